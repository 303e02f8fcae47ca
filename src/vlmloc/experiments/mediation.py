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


def _mediate_sequence(
    adapter, seq, heads, rows: int, where, forward, n_prefix: int = 0, pad: bool = False
) -> dict:
    """One task's mediation on one pair, the same sequence of runs whether the image prefix is
    cached or not: the source run capturing every head's output, the base run, then the base run
    with each batch of ``rows`` heads patched from the source at the positions ``where``.
    ``forward(image, n_rows)`` runs
    the model on ``seq`` (image "source" or "base") and returns its kept logits; with a cached
    prefix (``n_prefix`` > 0) the captured outputs are after it, and the prefix's are zeros,
    never read (the patch positions are False there)."""
    layers = range(adapter.num_layers)
    capture = HeadCapture(layers)
    with capture(adapter):
        src_logits = forward("source", 1)
    source = {}
    for layer in layers:
        captured = capture.assemble(layer, n_prefix)[0]
        source[layer] = torch.cat([captured.new_zeros((n_prefix, *captured.shape[1:])), captured])
    base_logits = forward("base", 1)
    patched = []
    for batch in _batches(heads, rows):
        n = rows if pad else len(batch)  # a static cache has ``rows`` rows: pad the last batch
        patch = HeadPatch(source, batch + [None] * (n - len(batch)), where, n_prefix or None)
        with patch(adapter):
            logits = forward("base", n)
        patched.append(content_nll(logits, seq.answer)[: len(batch)])
    return {
        "source": float(content_nll(src_logits, seq.answer)[0]),
        "base": float(content_nll(base_logits, seq.answer)[0]),
        "patched": torch.cat(patched).cpu().numpy(),
    }


def _whole_sequences(adapter, seqs, layout, visual) -> list:
    """``forward`` for each sequence run whole (positions "all": the patch reaches into the image
    prefix, so no prefix is shared)."""
    model = adapter.model

    def forward_of(seq):
        pos = sequence_positions(adapter, seq, layout)
        x = {k: embed(adapter, seq.ids, v) for k, v in visual.items()}

        def forward(image: str, n_rows: int):
            return model(
                inputs_embeds=x[image].expand(n_rows, -1, -1),
                position_ids=_rows(pos, n_rows),
                logits_to_keep=len(seq.answer) + 1,
            ).logits

        return forward

    return [forward_of(seq) for seq in seqs]


def _after_shared_prefix(adapter, seqs, layout, visual, rows: int, positions: str):
    """``forward`` for each sequence after its image prefix, run once per image and cached (the
    patched rows share one static copy of the base's cache), and the prefix's length."""
    model = adapter.model
    prefix_ids = seqs[0].ids[: seqs[0].prefix]
    if any(not torch.equal(s.ids[: s.prefix], prefix_ids) for s in seqs):
        raise RuntimeError("the tasks of one pair do not share its image prefix")
    n_prefix = len(prefix_ids)
    prefix_pos = sequence_positions(adapter, seqs[0], layout)[..., :n_prefix]
    caches = {
        k: model(
            inputs_embeds=embed(adapter, prefix_ids, v),
            position_ids=prefix_pos,
            use_cache=True,
            logits_to_keep=1,
        ).past_key_values
        for k, v in visual.items()
    }
    expanded = static_prefix_cache(model, caches["base"], rows, max(len(s.ids) for s in seqs))

    def forward_of(seq):
        if patch_positions(seq, positions)[:n_prefix].any():
            raise ValueError(f"positions {positions!r} reach into the image prefix: use 'all'")
        suffix = seq.suffix[None].to(adapter.device)
        pos = sequence_positions(adapter, seq, layout)[..., n_prefix:]

        def forward(image: str, n_rows: int):
            cache = caches[image] if n_rows == 1 else expanded
            logits = model(
                input_ids=suffix.expand(n_rows, -1),
                position_ids=_rows(pos, n_rows),
                past_key_values=cache,
                logits_to_keep=len(seq.answer) + 1,
            ).logits
            if n_rows == 1:
                _back_to(cache, n_prefix)
            else:
                rewind(cache, n_prefix)  # the static cache keeps its length
            return logits

        return forward

    return [forward_of(seq) for seq in seqs], n_prefix


@torch.inference_mode()
def mediate_pair(
    adapter: Adapter,
    source_pixels: torch.Tensor,
    base_pixels: torch.Tensor,
    layout: ImageLayout,
    tasks: Sequence[tuple[str, AnswerTokens]],
    positions: str,
    heads_per_batch: int,
    heads: Sequence[tuple[int, int]] | None = None,
) -> list[dict]:
    """Every head's patched score for one pair and each (task text, gold answer) in ``tasks``:
    per task {"base": nll, "source": nll, "patched": (n_heads,) nll} in the order of ``heads``
    (default: every head, layer by layer)."""
    model, dev = adapter.model, adapter.device
    heads = list(heads) if heads is not None else every_head(adapter)
    seqs = [pair_sequence(adapter, layout, text, answer) for text, answer in tasks]
    visual = {
        k: adapter.image_features(px.to(dev, model.dtype))
        for k, px in (("source", source_pixels), ("base", base_pixels))
    }
    rows = max(1, min(heads_per_batch, len(heads)))
    if positions == "all":
        forwards, n_prefix = _whole_sequences(adapter, seqs, layout, visual), 0
    else:
        forwards, n_prefix = _after_shared_prefix(adapter, seqs, layout, visual, rows, positions)
    return [
        _mediate_sequence(
            adapter,
            seq,
            heads,
            rows,
            patch_positions(seq, positions),
            forward,
            n_prefix,
            n_prefix > 0,
        )
        for seq, forward in zip(seqs, forwards, strict=True)
    ]


@register
class Mediation(Experiment):
    """Raw rows: per pair and task, the base and source runs and one row per patched head."""

    name = "mediation"
    tasks = TASKS
    param_columns = ("layer", "head", "positions")

    def pairs(self, job: ShardJob) -> list[str]:
        s = self.settings(job)
        return mediation_pairs(job.pool_ids, int(s["n_pairs"]), int(s["seed"]))

    def exclude(self, job: ShardJob) -> dict[str, str]:
        pairs = set(self.pairs(job))
        return {sid: "not a mediation pair" for sid in job.samples["sample_id"] if sid not in pairs}

    def conditions(self, job: ShardJob) -> Iterator[Condition]:
        raise NotImplementedError(
            "mediation writes teacher-forced rows (Mediation.run), not generations"
        )

    def run(self, job: ShardJob, log=None) -> pd.DataFrame:
        s, adapter = self.settings(job), job.adapter
        tasks = [t for t in s["tasks"]]
        positions, heads = s["positions"], every_head(adapter)
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
                int(s["heads_per_batch"]),
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
