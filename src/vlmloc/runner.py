"""Batched greedy generation and teacher-forced scoring, with an optional intervention.

An intervention is any callable ``intervention(adapter, encoded)`` returning a context manager
that is active around the model call of one batch (it sees where each row's visual tokens are).
With ``intervention=None`` the runner is exactly the stock model's ``generate`` / forward on the
same inputs (tested). Batches are formed from queries of similar length (less padding) and
results come back in the caller's order.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from .models.base import Adapter, Encoded

Intervention = Callable[[Adapter, Encoded], contextlib.AbstractContextManager]


def _open(image) -> Image.Image:
    return image if isinstance(image, Image.Image) else Image.open(image).convert("RGB")


class Runner:
    """``pixel_cache`` images given by path keep their preprocessed views (most recent first), so
    several prompts about one image decode and resize it once."""

    def __init__(self, adapter: Adapter, batch_size: int = 8, progress: bool = True, pixel_cache: int = 256):
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
        im = _open(image)
        item = (im.size, self.adapter.pixel_values(im).to(self.adapter.model.dtype))
        if key is not None and self.pixel_cache:
            self._cache[key] = item
            while len(self._cache) > self.pixel_cache:
                self._cache.popitem(last=False)
        return item

    def _batches(self, images: Sequence, texts: Sequence[str], desc: str):
        """Yield (indices, sizes, pixels) with queries ordered by their number of tokens."""
        prepared = [self._pixels(im) for im in images]
        lengths = [self.adapter.layout(*wh).n_tokens + len(t) for (wh, _), t in zip(prepared, texts, strict=True)]
        order = np.argsort(lengths, kind="stable")
        chunks = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for idx in tqdm(chunks, desc=desc, disable=not self.progress, mininterval=5):
            yield idx, [prepared[i][0] for i in idx], [prepared[i][1] for i in idx]

    @torch.inference_mode()
    def generate(self, images: Sequence, texts: Sequence[str], max_new_tokens: int,
                 intervention: Intervention | None = None, desc: str = "generate") -> list[str]:  # fmt: skip
        out: list[str | None] = [None] * len(texts)
        for idx, sizes, pixels in self._batches(images, texts, desc):
            enc = self.adapter.encode(sizes, [texts[i] for i in idx], pixels=pixels)
            enc.query_ids = [int(i) for i in idx]
            inputs = {k: v.to(self.adapter.device) for k, v in enc.inputs.items()}
            ctx = intervention(self.adapter, enc) if intervention else contextlib.nullcontext()
            with ctx:
                ids = self.adapter.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
            new = ids[:, inputs["input_ids"].shape[1] :]
            for i, row in zip(idx, new, strict=True):
                out[i] = self.decode(row)
        return out  # type: ignore[return-value]

    def decode(self, token_ids: torch.Tensor) -> str:
        """Generated ids -> text up to EOS, keeping markup tokens such as InternVL's <box>."""
        tok = self.adapter.tokenizer
        stop = {tok.eos_token_id, tok.pad_token_id}
        ids = []
        for t in token_ids.tolist():
            if t in stop:
                break
            ids.append(t)
        return tok.decode(ids, skip_special_tokens=False).strip()

    @torch.inference_mode()
    def score(self, images: Sequence, texts: Sequence[str], answers: Sequence[str],
              intervention: Intervention | None = None, desc: str = "score") -> list[np.ndarray]:  # fmt: skip
        """Per-token log-probabilities of each ``answer`` after its prompt (teacher forcing)."""
        out: list[np.ndarray | None] = [None] * len(texts)
        for idx, sizes, pixels in self._batches(images, texts, desc):
            enc = self.adapter.encode(sizes, [texts[i] for i in idx], answers=[answers[i] for i in idx], pixels=pixels)
            enc.query_ids = [int(i) for i in idx]
            inputs = {k: v.to(self.adapter.device) for k, v in enc.inputs.items()}
            # left padding: positions count from each row's first real token, as in generate()
            inputs["position_ids"] = (inputs["attention_mask"].cumsum(-1) - 1).clamp(min=0)
            ctx = intervention(self.adapter, enc) if intervention else contextlib.nullcontext()
            with ctx:
                logits = self.adapter.model(**inputs).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            ids = inputs["input_ids"][:, 1:]
            token_logp = logp.gather(-1, ids[..., None])[..., 0]
            lengths = inputs["attention_mask"].sum(1)
            for j, i in enumerate(idx):
                n_answer = int(lengths[j]) - enc.prompt_lengths[j]
                out[i] = token_logp[j, token_logp.shape[1] - n_answer :].cpu().numpy()
        return out  # type: ignore[return-value]
