"""Attention knockout (paper sec. 3.3.1): in chosen decoder layers, every query AFTER the image
(the rest of the prompt and every generated token) is kept from attending to chosen visual-token
keys (e.g. the object's tokens).

The knockout edits the attention mask that each layer's attention module receives (a forward
pre-hook with kwargs), so it works the same under eager attention (additive float masks: blocked
pairs get the dtype's minimum) and sdpa (boolean masks, or None when a batch has no padding: then
the causal mask is built here), with left padding, and with a KV cache (key length = cached +
new tokens). The mask is per query position and key position, shared by every head, so it needs
nothing about grouped-query attention. Blocked keys are visual tokens and a blocked query lies
after the image, so a query can always attend to itself: no row is ever fully masked.

Positions before and inside the image are never blocked, so the image prefix is the stock
model's (``touches_prefix = False``): the prefix runs once and every knockout condition continues
from its cache.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch

from ..models.base import Adapter, Encoded
from .base import BatchContext


def knockout_mask(
    mask: torch.Tensor | None, block: torch.Tensor, past: int, implementation: str
) -> torch.Tensor:
    """``mask`` as the attention module got it, with the (B, 1, q, K) pairs in ``block`` removed."""
    b, _, q, k = block.shape
    if mask is None:  # sdpa without padding: causal over the cache and the new tokens
        keys = torch.arange(k, device=block.device)
        queries = past + torch.arange(q, device=block.device)
        mask = (keys[None, :] <= queries[:, None])[None, None].expand(b, 1, q, k)
        if implementation == "eager":
            mask = torch.zeros(mask.shape, dtype=torch.float32, device=block.device).masked_fill(
                ~mask, torch.finfo(torch.float32).min
            )
    if mask.dtype == torch.bool:  # True = may attend
        return mask & ~block
    return mask.masked_fill(block, torch.finfo(mask.dtype).min)


class AttentionKnockout:
    """``keys[q]``: image-token indices (0..n_tokens-1) that the queries after query q's image may
    not attend to, in every layer of ``layers`` (reached through the adapter's attention sites)."""

    touches_prefix = False

    def __init__(self, layers: Sequence[int], keys: Sequence[np.ndarray]):
        self.layers = sorted({int(layer) for layer in layers})
        self.keys = keys

    def __call__(self, adapter: Adapter, batch: BatchContext | Encoded):
        if isinstance(batch, Encoded):
            batch = BatchContext.of(batch)
        if batch.phase == "prefix" or not self.layers:
            return contextlib.nullcontext()
        return self._hooked(adapter, batch)

    @contextlib.contextmanager
    def _hooked(self, adapter: Adapter, batch: BatchContext):
        implementation = adapter.model.config.get_text_config()._attn_implementation
        image_end = torch.tensor([int(pos[-1]) for pos in batch.image_positions])
        # every blocked key is a visual token, so it lies within the first max(image_end) + 1 positions
        prefix_blocked = torch.zeros(len(image_end), int(image_end.max()) + 1, dtype=torch.bool)
        for row, (pos, q) in enumerate(zip(batch.image_positions, batch.rows, strict=True)):
            prefix_blocked[
                row, pos[torch.as_tensor(np.asarray(self.keys[q], dtype=np.int64))].cpu()
            ] = True

        def hook(module, args, kwargs):
            hidden = kwargs["hidden_states"]
            n, q = hidden.shape[:2]
            cache = kwargs.get("past_key_values")
            past = cache.get_seq_length(module.layer_idx) if cache is not None else 0
            mask = kwargs.get("attention_mask")
            k = mask.shape[-1] if mask is not None else past + q
            key_blocked = torch.zeros(n, k, dtype=torch.bool)
            width = min(k, prefix_blocked.shape[1])
            key_blocked[:, :width] = prefix_blocked[:, :width]
            after_image = (past + torch.arange(q))[None, :] > image_end[:, None]
            block = (after_image[:, None, :, None] & key_blocked[:, None, None, :]).to(
                hidden.device
            )
            kwargs["attention_mask"] = knockout_mask(mask, block, past, implementation)
            return args, kwargs

        handles = [
            adapter.attention(layer).register_forward_pre_hook(hook, with_kwargs=True)
            for layer in self.layers
        ]
        try:
            yield
        finally:
            for h in handles:
                h.remove()
