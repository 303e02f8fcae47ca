"""Batched greedy generation and teacher-forced scoring, with an optional intervention.

An intervention (``interventions.base``) is a callable ``intervention(adapter, batch)`` returning
a context manager that is active around one model call of one batch; ``batch`` says which rows,
where their visual tokens sit, and the phase (a whole sequence, the shared image prefix, or a
question continuing from its cache). With ``intervention=None`` the runner is exactly the stock model's ``generate`` / forward on the
same inputs (tested). Batches are formed from queries of similar length (less padding) and
results come back in the caller's order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .images import open_image
from .interventions.base import BatchContext, Intervention, enter
from .models.base import Adapter, AnswerTokens, pad_rows


class Answer(str):
    """A generated reply, as text; ``truncated``: generation stopped at ``max_new_tokens``
    before the model wrote EOS, so the reply may be cut off (a box with three numbers, a list
    missing its end). Compares and parses as the plain string."""

    truncated: bool

    def __new__(cls, text: str, truncated: bool = False) -> Answer:
        answer = super().__new__(cls, text)
        answer.truncated = truncated
        return answer


def content_nll(logits: torch.Tensor, answer: AnswerTokens) -> torch.Tensor:
    """Mean negative log-probability of a gold answer's CONTENT tokens (template tokens masked:
    log-perplexity, paper sec. 3.3.2), per row. ``logits`` end with the sequence's last
    ``len(answer) + 1`` positions or more: all but the last predict the answer's tokens."""
    n = len(answer)
    logp = torch.log_softmax(logits[:, -n - 1 : -1].float(), dim=-1)
    ids = torch.tensor(answer.ids, device=logp.device)
    token = logp.gather(-1, ids[None, :, None].expand(len(logp), -1, 1))[..., 0]
    content = torch.tensor(answer.content, device=logp.device)
    return -(token * content).sum(-1) / content.sum()


def static_prefix_cache(model, prefix, rows: int, length: int):
    """A prefix's keys and values (``prefix``, a DynamicCache of 1 or ``rows`` rows) in ``rows``
    rows of a preallocated cache of ``length`` positions. What follows writes in place after the
    prefix, and ``rewind`` makes it the prefix again: a DynamicCache copies every row's whole
    cache into a new tensor at each step (x1.6 per decode step on the toys)."""
    from transformers import StaticCache

    cache = StaticCache(config=model.config, max_cache_len=length)
    for layer, source in zip(cache.layers, prefix.layers, strict=True):
        k, v = source.keys, source.values
        layer.lazy_initialization(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1))
        layer.keys[:, :, : k.shape[2]] = k
        layer.values[:, :, : v.shape[2]] = v
        layer.cumulative_length.fill_(k.shape[2])
    return cache


def rewind(cache, n: int) -> None:
    """Back to the first ``n`` positions of a ``static_prefix_cache`` (later entries are never
    read: a query attends to positions up to its own)."""
    for layer in cache.layers:
        layer.cumulative_length.fill_(n)


class Runner:
    """``pixel_cache`` images given by path keep their preprocessed views (most recent first), so
    several prompts about one image decode and resize it once."""

    def __init__(
        self, adapter: Adapter, batch_size: int = 8, progress: bool = True, pixel_cache: int = 256
    ):
        self.adapter = adapter
        self.batch_size = batch_size
        self.progress = progress
        self.pixel_cache = pixel_cache
        self._cache: OrderedDict[str, tuple[tuple[int, int], torch.Tensor]] = OrderedDict()

    def _pixels(self, image) -> tuple[tuple[int, int], torch.Tensor]:
        key = str(image) if isinstance(image, str | Path) else None
        if key is not None and key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        im = open_image(image)
        item = (im.size, self.adapter.pixel_values(im).to(self.adapter.model.dtype))
        if key is not None and self.pixel_cache:
            self._cache[key] = item
            while len(self._cache) > self.pixel_cache:
                self._cache.popitem(last=False)
        return item

    def pixels(self, image) -> torch.Tensor:
        """One image's preprocessed views (from the cache when it was given by path)."""
        return self._pixels(image)[1]

    def _batches(self, images: Sequence, texts: Sequence[str] | Sequence[int], desc: str):
        """Yield (indices, sizes, pixels) with queries ordered by their number of tokens
        (``texts``, or their lengths)."""
        prepared = [self._pixels(im) for im in images]
        lengths = [
            self.adapter.layout(*wh).n_tokens + (t if isinstance(t, int) else len(t))
            for (wh, _), t in zip(prepared, texts, strict=True)
        ]
        order = np.argsort(lengths, kind="stable")
        chunks = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for idx in tqdm(chunks, desc=desc, disable=not self.progress, mininterval=5):
            yield idx, [prepared[i][0] for i in idx], [prepared[i][1] for i in idx]

    @torch.inference_mode()
    def generate(
        self,
        images: Sequence,
        texts: Sequence[str],
        max_new_tokens: int,
        intervention: Intervention | None = None,
        desc: str = "generate",
    ) -> list[Answer]:
        out: list[str | None] = [None] * len(texts)
        for idx, sizes, pixels in self._batches(images, texts, desc):
            enc = self.adapter.encode(sizes, [texts[i] for i in idx], pixels=pixels)
            enc.query_ids = [int(i) for i in idx]
            inputs = {k: v.to(self.adapter.device) for k, v in enc.inputs.items()}
            with enter(intervention, self.adapter, BatchContext.of(enc)):
                ids = self.adapter.model.generate(
                    **inputs, max_new_tokens=max_new_tokens, do_sample=False
                )
            new = ids[:, inputs["input_ids"].shape[1] :]
            for i, row in zip(idx, new, strict=True):
                out[i] = self.decode(row)
        return out  # type: ignore[return-value]

    def generate_shared(
        self,
        images: Sequence,
        texts: Sequence[Sequence[str]],
        max_new_tokens: Sequence[int],
        intervention: Intervention | None = None,
        desc: str = "generate",
    ) -> list[list[Answer]]:
        """``texts[t][i]`` is the t-th question about ``images[i]``; returns ``answers[t][i]``.

        The questions about one image share its prefix (system prompt and visual tokens, most of
        the sequence): a batch of images runs its prefixes once, and each question continues from
        their key/value cache. The prefix is left-padded and each question's own tokens are
        left-padded after it, so rows still end together; positions count real tokens only (the
        adapter's ``position_ids``), so every row sees what the stock model sees on it alone
        (tested against ``generate``). The intervention is entered for the prefix run (phase
        "prefix") and again for each question (phase "suffix", ``past_length`` = the prefix); its
        rows are the images' indices, and ``image_positions`` are where the visual tokens sit in
        the prefix, and so in the cache.
        """
        return self.generate_conditions(images, texts, max_new_tokens, [intervention], desc)[0]

    @torch.inference_mode()
    def generate_conditions(
        self,
        images: Sequence,
        texts: Sequence[Sequence[str]],
        max_new_tokens: Sequence[int],
        interventions: Sequence[Intervention | None],
        desc: str = "generate",
    ) -> list[list[list[Answer]]]:
        """``answers[c][t][i]``: the t-th question about ``images[i]`` under ``interventions[c]``.

        As ``generate_shared``, and with several interventions one prefix run serves them all:
        each condition's questions continue from the same cache. That is only right for
        interventions that leave the prefix alone (``touches_prefix = False``, e.g. knockouts from
        post-image queries); a single intervention may touch it (it is then active in the prefix run).
        """
        if not texts or not interventions:
            return [[] for _ in interventions]
        shared = len(interventions) > 1
        if shared and any(
            getattr(i, "touches_prefix", True) for i in interventions if i is not None
        ):
            raise ValueError("conditions that share one prefix run must not touch the prefix")
        out = [[[None] * len(images) for _ in texts] for _ in interventions]
        lengths = [sum(len(t[i]) for t in texts) for i in range(len(images))]
        for idx, sizes, pixels in self._batches(images, lengths, desc):
            enc = self.adapter.encode(
                sizes, [texts[0][i] for i in idx], pixels=pixels
            )  # pixels and layouts
            enc.query_ids = [int(i) for i in idx]
            (prefix_ids, prefix_mask), suffixes = self._split_prefixes(
                enc.layouts, [[t[i] for i in idx] for t in texts]
            )
            inputs, prefix = self._run_prefixes(
                enc, prefix_ids, prefix_mask, None if shared else interventions[0]
            )
            n_prefix = prefix.get_seq_length()
            longest = max(
                ids.shape[1] + n for (ids, _), n in zip(suffixes, max_new_tokens, strict=True)
            )
            cache = static_prefix_cache(self.adapter.model, prefix, len(idx), n_prefix + longest)
            del prefix
            for c, intervention in enumerate(interventions):
                for t, (ids, mask) in enumerate(suffixes):
                    full = torch.cat([inputs["input_ids"], ids.to(self.adapter.device)], 1)
                    mask = torch.cat([inputs["attention_mask"], mask.to(self.adapter.device)], 1)
                    # the whole sequence's positions (the adapter's: M-RoPE for Qwen2.5-VL); generate
                    # feeds the uncached part and counts on from the last one while it decodes
                    positions = self.adapter.position_ids(full, mask, enc.layouts)
                    with enter(
                        intervention, self.adapter, BatchContext.of(enc, "suffix", n_prefix)
                    ):
                        gen = self.adapter.model.generate(
                            input_ids=full,
                            attention_mask=mask,
                            position_ids=positions,
                            past_key_values=cache,
                            max_new_tokens=max_new_tokens[t],
                            do_sample=False,
                        )
                    rewind(cache, n_prefix)  # back to the prefix for the next question
                    for i, row in zip(idx, gen[:, full.shape[1] :], strict=True):
                        out[c][t][i] = self.decode(row)
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def score_conditions(
        self,
        images: Sequence,
        texts: Sequence[Sequence[str]],
        answers: Sequence[Sequence[AnswerTokens]],
        interventions: Sequence[Intervention | None],
        desc: str = "score",
    ) -> list[list[np.ndarray]]:
        """``nll[c][t][i]``: the gold answer ``answers[t][i]`` of the t-th question about
        ``images[i]`` under ``interventions[c]``, teacher-forced: the mean negative
        log-probability of its content tokens (``content_nll``). The counterpart of
        ``generate_conditions``: each batch's image prefixes run once, and every condition's
        questions continue from their cache (conditions that touch the prefix run alone)."""
        if not texts or not interventions:
            return [[] for _ in interventions]
        shared = len(interventions) > 1
        if shared and any(
            getattr(i, "touches_prefix", True) for i in interventions if i is not None
        ):
            raise ValueError("conditions that share one prefix run must not touch the prefix")
        out = [[np.full(len(images), np.nan) for _ in texts] for _ in interventions]
        lengths = [sum(len(t[i]) for t in texts) for i in range(len(images))]
        dev = self.adapter.device
        for idx, sizes, pixels in self._batches(images, lengths, desc):
            enc = self.adapter.encode(sizes, [texts[0][i] for i in idx], pixels=pixels)
            enc.query_ids = [int(i) for i in idx]
            golds = [[answers[t][i] for i in idx] for t in range(len(texts))]
            (prefix_ids, prefix_mask), suffixes = self._split_prefixes(
                enc.layouts,
                [[t[i] for i in idx] for t in texts],
                [[list(a.ids) for a in g] for g in golds],
            )
            inputs, cache = self._run_prefixes(
                enc, prefix_ids, prefix_mask, None if shared else interventions[0]
            )
            n_prefix = cache.get_seq_length()
            for c, intervention in enumerate(interventions):
                for t, (ids, mask) in enumerate(suffixes):
                    full = torch.cat([inputs["attention_mask"], mask.to(dev)], 1)
                    positions = self.adapter.position_ids(
                        torch.cat([inputs["input_ids"], ids.to(dev)], 1),
                        full,
                        enc.layouts,
                        n_prefix,
                    )
                    keep = max(len(a) for a in golds[t]) + 1
                    with enter(
                        intervention, self.adapter, BatchContext.of(enc, "suffix", n_prefix)
                    ):
                        logits = self.adapter.model(
                            input_ids=ids.to(dev),
                            attention_mask=full,
                            position_ids=positions,
                            past_key_values=cache,
                            logits_to_keep=keep,
                        ).logits
                    cache.crop(n_prefix - cache.get_seq_length())
                    for row, (i, gold) in enumerate(zip(idx, golds[t], strict=True)):
                        out[c][t][i] = float(content_nll(logits[row : row + 1], gold)[0])
        return out

    def _run_prefixes(self, enc, prefix_ids: torch.Tensor, prefix_mask: torch.Tensor, intervention):
        """One batch's image prefixes through the model (the intervention entered for the prefix
        phase): the inputs on the device and the key/value cache the questions continue."""
        enc.inputs["input_ids"], enc.inputs["attention_mask"] = prefix_ids, prefix_mask
        enc.inputs.update(self.adapter.token_inputs(prefix_ids))
        enc.image_positions = [
            torch.nonzero(row == self.adapter.image_token_id).flatten() for row in prefix_ids
        ]
        inputs = {k: v.to(self.adapter.device) for k, v in enc.inputs.items()}
        inputs["position_ids"] = self.adapter.position_ids(
            inputs["input_ids"], inputs["attention_mask"], enc.layouts
        )
        with enter(intervention, self.adapter, BatchContext.of(enc, "prefix")):
            cache = self.adapter.model(**inputs, use_cache=True, logits_to_keep=1).past_key_values
        return inputs, cache

    def _split_prefixes(
        self,
        layouts: Sequence,
        texts: Sequence[Sequence[str]],
        answers: Sequence[Sequence[list[int]]] | None = None,
    ):
        """The batch rows' image prefixes, and per question set the tokens that follow them (then
        the gold answer's ids, where given), each left-padded into (ids, mask)."""
        adapter, pad = self.adapter, self.adapter.tokenizer.pad_token_id
        prefixes, suffixes = None, []
        for question in texts:
            prompts = [
                adapter.prompt(t, lay.n_tokens) for t, lay in zip(question, layouts, strict=True)
            ]
            rows = adapter.tokenizer(prompts, add_special_tokens=True)[
                "input_ids"
            ]  # as encode() has them
            cuts = [adapter.image_prefix_length(r) for r in rows]
            heads = [r[:c] for r, c in zip(rows, cuts, strict=True)]
            if prefixes is None:
                prefixes = heads
            elif heads != prefixes:
                raise RuntimeError("the questions about one image do not share its image prefix")
            gold = answers[len(suffixes)] if answers is not None else [[] for _ in rows]
            suffixes.append(
                pad_rows([r[c:] + a for r, c, a in zip(rows, cuts, gold, strict=True)], pad)
            )
        return pad_rows(prefixes, pad), suffixes

    def decode(self, token_ids: torch.Tensor) -> Answer:
        """Generated ids -> text up to EOS, keeping markup tokens such as InternVL's <box>.
        A row without EOS (or the padding that follows it) ran out of ``max_new_tokens``."""
        tok = self.adapter.tokenizer
        stop = {tok.eos_token_id, tok.pad_token_id}
        ids, stopped = [], False
        for t in token_ids.tolist():
            if t in stop:
                stopped = True
                break
            ids.append(t)
        return Answer(tok.decode(ids, skip_special_tokens=False).strip(), truncated=not stopped)

    @torch.inference_mode()
    def score(
        self,
        images: Sequence,
        texts: Sequence[str],
        answers: Sequence[str],
        intervention: Intervention | None = None,
        desc: str = "score",
    ) -> list[np.ndarray]:
        """Per-token log-probabilities of each ``answer`` after its prompt (teacher forcing)."""
        out: list[np.ndarray | None] = [None] * len(texts)
        for idx, sizes, pixels in self._batches(images, texts, desc):
            enc = self.adapter.encode(
                sizes, [texts[i] for i in idx], answers=[answers[i] for i in idx], pixels=pixels
            )
            enc.query_ids = [int(i) for i in idx]
            inputs = {k: v.to(self.adapter.device) for k, v in enc.inputs.items()}
            # left padding: positions count from each row's first real token, as in generate()
            inputs["position_ids"] = self.adapter.position_ids(
                inputs["input_ids"], inputs["attention_mask"], enc.layouts
            )
            with enter(intervention, self.adapter, BatchContext.of(enc)):
                logits = self.adapter.model(**inputs).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            ids = inputs["input_ids"][:, 1:]
            token_logp = logp.gather(-1, ids[..., None])[..., 0]
            lengths = inputs["attention_mask"].sum(1)
            for j, i in enumerate(idx):
                n_answer = int(lengths[j]) - enc.prompt_lengths[j]
                out[i] = token_logp[j, token_logp.shape[1] - n_answer :].cpu().numpy()
        return out  # type: ignore[return-value]
