"""Paper sec. 3.3.2 and appendix 10 (Fig 4, Fig 14): causal mediation per attention head.

A pair is one sample of the probing subset: the SOURCE run sees the original image, the BASE run
the object-removed one, with the same prompt and the same gold answer under teacher forcing.
For every head of every decoder layer, the head's source output is written into the base run at
the chosen positions (``positions``: ``post_image`` = the rest of the prompt and the answer, the
paper's "all activations associated with the prompt tokens"; ``answer`` = the positions that
predict answer tokens; ``all``), and the gold answer's content tokens are scored. A raw row holds
the mean negative log-probability over the content tokens (``nll``, log-perplexity) of the
base, source and every patched run; MF = (P_base - P_patched) / (P_base - P_src) is computed
from the rows on CPU (``experiments.head_ranking``), so its threshold changes no model job.

``mediate_pair`` is the fast path: per pair, the source run once (capturing every head), the
base image prefix once (its key/value cache), then batches of heads as batch rows over the
suffix alone, each row patching a different head. ``experiments.reference.mediate_pair_reference``
is the plain way (one full forward per head, what public tools do), kept for the tests and the
benchmark.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ..interventions.heads import POSITIONS, HeadCapture, HeadPatch
from ..models.base import Adapter, AnswerTokens, ImageLayout
from ..runner import content_nll, rewind, static_prefix_cache
from ..tasks import task_prompt
from .base import Condition, Experiment, ShardJob, register, token_counts

TASKS = ("localization", "binary")  # the paper's mediation tasks (binary: its classification query)


def mediation_pairs(pool: Sequence[str], n_pairs: int, seed: int) -> list[str]:
    """The pairs' sample ids: a seeded draw of ``n_pairs`` from the probing subset (all of it
    when it is smaller). Head ablation scores on the rest by default."""
    ids = sorted(pool)
    if n_pairs >= len(ids):
        return ids
    rng = np.random.default_rng(seed)
    return sorted(ids[i] for i in rng.choice(len(ids), size=n_pairs, replace=False))


@dataclass(frozen=True)
class PairSequence:
    """One task's token sequence of a pair: prompt then gold answer (the same for source and
    base: the two images have the same size, so the same layout)."""

    ids: torch.Tensor  # (L,)
    prefix: int  # tokens up to the last image token
    prompt_length: int
    answer: AnswerTokens

    @property
    def suffix(self) -> torch.Tensor:
        return self.ids[self.prefix :]


def pair_sequence(
    adapter: Adapter, layout: ImageLayout, task_text: str, answer: AnswerTokens
) -> PairSequence:
    prompt = adapter.tokenizer(adapter.prompt(task_text, layout.n_tokens), add_special_tokens=True)[
        "input_ids"
    ]
    ids = torch.tensor(list(prompt) + list(answer.ids))
    return PairSequence(ids, adapter.image_prefix_length(prompt), len(prompt), answer)


def patch_positions(seq: PairSequence, positions: str) -> torch.Tensor:
    """Where a head is patched, as a (L,) mask of absolute positions."""
    n = len(seq.ids)
    where = torch.zeros(n, dtype=torch.bool)
    if positions == "post_image":
        where[seq.prefix :] = True
    elif positions == "answer":  # the positions whose outputs predict the answer's tokens
        where[seq.prompt_length - 1 : n - 1] = True
    elif positions == "all":
        where[:] = True
    else:
        raise ValueError(f"mediation positions must be one of {POSITIONS}, not {positions!r}")
    return where


def embed(adapter: Adapter, ids: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
    """(1, L, hidden) input embeddings of ``ids`` with the visual tokens at the image positions."""
    image = ids == adapter.image_token_id
    safe = ids.masked_fill(image, adapter.tokenizer.pad_token_id or 0).to(adapter.device)
    x = adapter.model.get_input_embeddings()(safe[None]).clone()
    x[0, image.to(adapter.device)] = visual.to(x.dtype)
    return x


def sequence_positions(adapter: Adapter, seq: PairSequence, layout: ImageLayout) -> torch.Tensor:
    """The position ids of one pair's whole sequence (1 row; the adapter's, M-RoPE for Qwen2.5-VL)."""
    row = seq.ids[None].to(adapter.device)
    return adapter.position_ids(row, torch.ones_like(row), [layout])


def _rows(positions: torch.Tensor, n: int) -> torch.Tensor:
    """One row's position ids for ``n`` batch rows (the batch axis is the second to last)."""
    return positions.expand(*positions.shape[:-2], n, positions.shape[-1])


def _back_to(cache, n: int) -> None:
    """Drop what a suffix added to a prefix cache of ``n`` tokens."""
    cache.crop(n - cache.get_seq_length())


def every_head(adapter: Adapter) -> list[tuple[int, int]]:
    """Every (layer, head) of the decoder, layer by layer."""
    return [(layer, h) for layer in range(adapter.num_layers) for h in range(adapter.num_heads)]


def _batches(items: Sequence, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


@torch.inference_mode()
def mediate_pair(
    adapter: Adapter,
    source_pixels: torch.Tensor,
    base_pixels: torch.Tensor,
    layout: ImageLayout,
    tasks: Sequence[tuple[str, AnswerTokens]],
    positions: str = "post_image",
    heads_per_batch: int = 64,
    heads: Sequence[tuple[int, int]] | None = None,
) -> list[dict]:
    """Every head's patched score for one pair and each (task text, gold answer) in ``tasks``:
    per task {"base": nll, "source": nll, "patched": (n_heads,) nll} in the order of ``heads``
    (default: every head, layer by layer)."""
    model, dev = adapter.model, adapter.device
    heads = list(heads) if heads is not None else every_head(adapter)
    layers = range(adapter.num_layers)
    seqs = [pair_sequence(adapter, layout, text, answer) for text, answer in tasks]
    visual = {
        k: adapter.image_features(px.to(dev, model.dtype))
        for k, px in (("source", source_pixels), ("base", base_pixels))
    }
    rows = max(1, min(heads_per_batch, len(heads)))
    out = []
    if (
        positions == "all"
    ):  # the patch reaches into the image prefix: whole sequences, no shared cache
        for seq in seqs:
            where, keep = patch_positions(seq, positions), len(seq.answer) + 1
            pos = sequence_positions(adapter, seq, layout)
            capture = HeadCapture(layers)
            with capture(adapter):
                src_logits = model(
                    inputs_embeds=embed(adapter, seq.ids, visual["source"]),
                    position_ids=pos,
                    logits_to_keep=keep,
                ).logits
            source = {layer: capture.assemble(layer)[0] for layer in layers}
            base_x = embed(adapter, seq.ids, visual["base"])
            base_logits = model(inputs_embeds=base_x, position_ids=pos, logits_to_keep=keep).logits
            result = {
                "source": float(content_nll(src_logits, seq.answer)[0]),
                "base": float(content_nll(base_logits, seq.answer)[0]),
            }
            patched = []
            for batch in _batches(heads, rows):
                with HeadPatch(source, batch, where)(adapter):
                    logits = model(
                        inputs_embeds=base_x.expand(len(batch), -1, -1),
                        position_ids=_rows(pos, len(batch)),
                        logits_to_keep=keep,
                    ).logits
                patched.append(content_nll(logits, seq.answer))
            out.append(result | {"patched": torch.cat(patched).cpu().numpy()})
        return out

    prefix_ids = seqs[0].ids[: seqs[0].prefix]
    if any(not torch.equal(s.ids[: s.prefix], prefix_ids) for s in seqs):
        raise RuntimeError("the tasks of one pair do not share its image prefix")
    n_prefix = len(prefix_ids)
    caches, prefix_pos = {}, sequence_positions(adapter, seqs[0], layout)[..., :n_prefix]
    for k in ("source", "base"):
        caches[k] = model(
            inputs_embeds=embed(adapter, prefix_ids, visual[k]),
            position_ids=prefix_pos,
            use_cache=True,
            logits_to_keep=1,
        ).past_key_values
    expanded = static_prefix_cache(model, caches["base"], rows, max(len(s.ids) for s in seqs))
    for seq in seqs:
        where, keep = patch_positions(seq, positions), len(seq.answer) + 1
        if where[:n_prefix].any():
            raise ValueError(f"positions {positions!r} reach into the image prefix: use 'all'")
        suffix = seq.suffix[None].to(dev)
        pos = sequence_positions(adapter, seq, layout)[..., n_prefix:]
        capture = HeadCapture(layers)
        with capture(adapter):
            src_logits = model(
                input_ids=suffix,
                position_ids=pos,
                past_key_values=caches["source"],
                logits_to_keep=keep,
            ).logits
        # source outputs over absolute positions; the prefix's are zeros, never read (``where`` is False there)
        _back_to(caches["source"], n_prefix)
        source = {}
        for layer in layers:
            captured = capture.assemble(layer, n_prefix)[0]
            source[layer] = torch.cat(
                [captured.new_zeros((n_prefix, *captured.shape[1:])), captured]
            )
        base_logits = model(
            input_ids=suffix, position_ids=pos, past_key_values=caches["base"], logits_to_keep=keep
        ).logits
        _back_to(caches["base"], n_prefix)
        result = {
            "source": float(content_nll(src_logits, seq.answer)[0]),
            "base": float(content_nll(base_logits, seq.answer)[0]),
        }
        patched = []
        for batch in _batches(heads, rows):
            batch_rows = batch + [None] * (rows - len(batch))  # the cache has ``rows`` rows
            with HeadPatch(source, batch_rows, where, n_prefix)(adapter):
                logits = model(
                    input_ids=suffix.expand(rows, -1),
                    position_ids=_rows(pos, rows),
                    past_key_values=expanded,
                    logits_to_keep=keep,
                ).logits
            rewind(expanded, n_prefix)
            patched.append(content_nll(logits, seq.answer)[: len(batch)])
        out.append(result | {"patched": torch.cat(patched).cpu().numpy()})
    return out


@register
class Mediation(Experiment):
    """Raw rows: per pair and task, the base and source runs and one row per patched head."""

    name = "mediation"
    tasks = TASKS
    param_columns = ("layer", "head", "positions")

    def pairs(self, job: ShardJob) -> list[str]:
        s = job.settings
        return mediation_pairs(job.pool_ids, int(s["n_pairs"]), int(s["seed"]))

    def exclude(self, job: ShardJob) -> dict[str, str]:
        pairs = set(self.pairs(job))
        return {sid: "not a mediation pair" for sid in job.samples["sample_id"] if sid not in pairs}

    def conditions(self, job: ShardJob) -> Iterator[Condition]:
        raise NotImplementedError(
            "mediation writes teacher-forced rows (Mediation.run), not generations"
        )

    def run(self, job: ShardJob, log=None) -> pd.DataFrame:
        s, adapter = job.settings, job.adapter
        tasks = [t for t in s.get("tasks", TASKS)]
        positions, heads = s.get("positions", "post_image"), every_head(adapter)
        rows = []
        for r in tqdm(job.records, desc="mediation pairs", disable=not job.progress, mininterval=5):
            layout = adapter.layout(int(r["width"]), int(r["height"]))
            prompts = [task_prompt(t, r["category"], job.categories) for t in tasks]
            golds = [adapter.gold_answer(t, r) for t in tasks]
            answers = [
                adapter.answer_tokens(g, adapter.prompt(p, layout.n_tokens))
                for g, p in zip(golds, prompts, strict=True)
            ]
            results = mediate_pair(
                adapter,
                job.runner.pixels(r["image_path"]),
                job.runner.pixels(r["removed_path"]),
                layout,
                list(zip(prompts, answers, strict=True)),
                positions,
                int(s.get("heads_per_batch", 64)),
            )
            counts = token_counts(adapter, r, None)
            for task, prompt, gold, answer, res in zip(
                tasks, prompts, golds, answers, results, strict=True
            ):
                common = {
                    "sample_id": r["sample_id"],
                    "experiment": self.name,
                    "positions": positions,
                    "task": task,
                    "prompt": prompt,
                    "answer": gold.text,
                    "truncated": False,
                    "readout": "teacher_forced",
                    "n_content": int(sum(answer.content)),
                    **counts,
                }
                rows.append(
                    common
                    | {
                        "condition": "base",
                        "layer": -1,
                        "head": -1,
                        "image": "removed",
                        "nll": res["base"],
                    }
                )
                rows.append(
                    common
                    | {
                        "condition": "source",
                        "layer": -1,
                        "head": -1,
                        "image": "original",
                        "nll": res["source"],
                    }
                )
                for (layer, h), nll in zip(heads, res["patched"], strict=True):
                    rows.append(
                        common
                        | {
                            "condition": f"l{layer}.h{h}",
                            "layer": layer,
                            "head": h,
                            "image": "removed",
                            "nll": float(nll),
                        }
                    )
        if log is not None:
            log.info(
                "mediation: %d pairs x %s x %d heads (positions %s)",
                len(job.records),
                "/".join(tasks),
                len(heads),
                positions,
            )
        return pd.DataFrame(rows)
