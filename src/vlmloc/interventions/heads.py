"""Attention-head interventions (paper sec. 3.3.2-3.3.3): capture, patch and zero single heads.

A head's output is its slice of the o_proj input (site ``head_z.{layer}``): (batch, tokens,
heads * head_dim) with the QUERY heads contiguous, so these work the same with grouped-query
attention (InternVL-3.5's Qwen3: 32 query heads, 8 key/value heads), where patching key/value
heads would move four query heads at once.

Each acts at chosen ABSOLUTE sequence positions. A call of the model covers positions
``past .. past + q`` (a whole sequence, an image prefix, a suffix continuing a cache, or one
decode step); ``past`` is read in a pre-hook on the layer's attention module, from the cache it
is given, just before o_proj runs in the same module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from ..models.base import Adapter, Encoded
from .base import BatchContext, hooked

POSITIONS = ("post_image", "answer", "all")


def _call_offsets(adapter: Adapter, layers: Sequence[int], state: dict):
    """Pre-hooks on each layer's attention module that store ``state[layer]`` = positions already
    in its cache (the first absolute position of this call)."""

    def hook(layer):
        def record(_module, _args, kwargs):
            cache = kwargs.get("past_key_values")
            # int(): a static cache returns its length tensor, which the attention then grows in place
            state[layer] = int(cache.get_seq_length(layer)) if cache is not None else 0

        return record

    return [
        adapter.attention(layer).register_forward_pre_hook(hook(layer), with_kwargs=True)
        for layer in layers
    ]


@contextlib.contextmanager
def _head_hooks(adapter: Adapter, layers: Sequence[int], make):
    """``make(layer, state) -> fn(value) -> value | None`` at ``head_z.{layer}`` for each layer,
    with the call offsets in ``state``; every handle removed on exit."""
    state: dict[int, int] = {}
    offsets = _call_offsets(adapter, layers, state)
    try:
        with hooked(adapter, {f"head_z.{layer}": make(layer, state) for layer in layers}):
            yield
    finally:
        for h in offsets:
            h.remove()


def _as_heads(value: torch.Tensor, n_heads: int) -> torch.Tensor:
    return value.view(*value.shape[:-1], n_heads, value.shape[-1] // n_heads)


class HeadCapture:
    """Records every head's output at every layer of ``layers`` in each call: ``store[layer]`` is
    a list of (first absolute position, tensor (rows, q, heads, head_dim)) in call order.
    ``assemble`` joins them into one sequence. Changes nothing."""

    touches_prefix = False

    def __init__(self, layers: Sequence[int], store: dict | None = None):
        self.layers = list(layers)
        self.store = {} if store is None else store

    def __call__(self, adapter: Adapter, batch: BatchContext | Encoded | None = None):
        n_heads = adapter.num_heads

        def make(layer, state):
            def fn(value):
                self.store.setdefault(layer, []).append(
                    (state[layer], _as_heads(value, n_heads).detach().clone())
                )

            return fn

        return _head_hooks(adapter, self.layers, make)

    def assemble(self, layer: int, start: int = 0) -> torch.Tensor:
        """The captured calls of ``layer`` as one (rows, positions, heads, head_dim) tensor; the
        calls must cover positions ``start``.. without a gap."""
        parts = sorted(self.store[layer], key=lambda p: p[0])
        expected = start
        for start, t in parts:
            if start != expected:
                raise ValueError(
                    f"layer {layer}: captured calls leave positions {expected}..{start - 1} out"
                )
            expected += t.shape[1]
        return torch.cat([t for _, t in parts], 1)


class HeadPatch:
    """Each batch row writes a different head's SOURCE output into its own run (activation
    patching): row r patches ``heads[r]``, a (layer, head), a list of them, or nothing (None), at
    the absolute positions where ``where`` is True, with ``source[layer]`` (positions, heads,
    head_dim) from the source run. Rows share one sequence (one pair): the same positions."""

    def __init__(
        self,
        source: dict[int, torch.Tensor],
        heads: Sequence,
        where: torch.Tensor,
        prefix_length: int | None = None,
    ):
        self.source = source
        self.rows = [
            [] if h is None else [tuple(h)] if isinstance(h[0], int) else [tuple(x) for x in h]
            for h in heads
        ]
        self.where = where.bool()
        # with the image prefix's length known, a patch after it leaves the prefix alone
        self.touches_prefix = prefix_length is None or bool(self.where[:prefix_length].any())
        self.layers = sorted({layer for row in self.rows for layer, _ in row})

    def __call__(self, adapter: Adapter, batch: BatchContext | Encoded | None = None):
        n_heads = adapter.num_heads
        by_layer = {
            layer: [(r, h) for r, row in enumerate(self.rows) for lay, h in row if lay == layer]
            for layer in self.layers
        }

        def make(layer, state):
            def fn(value):
                past, q = state[layer], value.shape[1]
                cols = self.where[past : past + q].nonzero().flatten().to(value.device)
                if not len(cols):
                    return None
                out = _as_heads(value.clone(), n_heads)
                src = self.source[layer].to(out.device, out.dtype)
                for row, head in by_layer[layer]:
                    out[row, cols, head] = src[past + cols, head]
                return out.view_as(value)

            return fn

        return _head_hooks(adapter, self.layers, make)


class HeadZero:
    """Head ablation: the output of every head in ``heads`` ((layer, head) pairs) is set to zero
    (the paper) or, with ``means`` ({(layer, head): (head_dim,) vector}), to the head's mean
    output (mean ablation: it removes what the head says about this input, not its constant
    part). In every row, at ``positions``: "all" (every position, the image prefix included, so
    the prefix must be rerun: ``touches_prefix``) or "post_image" (the rest of the prompt and the
    answer; the clean prefix can be shared)."""

    def __init__(
        self,
        heads: Sequence[tuple[int, int]],
        positions: str = "all",
        means: dict[tuple[int, int], torch.Tensor] | None = None,
    ):
        if positions not in ("all", "post_image"):
            raise ValueError(
                f"head ablation positions must be 'all' or 'post_image', not {positions!r}"
            )
        self.heads = sorted({(int(layer), int(h)) for layer, h in heads})
        self.positions, self.means = positions, means
        if means is not None and any(h not in means for h in self.heads):
            raise ValueError("mean ablation needs every ablated head's mean output")
        self.touches_prefix = positions == "all"
        self.layers = sorted({layer for layer, _ in self.heads})

    def __call__(self, adapter: Adapter, batch: BatchContext | Encoded | None = None):
        if not self.heads:
            return contextlib.nullcontext()
        if isinstance(batch, Encoded):
            batch = BatchContext.of(batch)
        if self.positions == "post_image" and batch is None:
            raise ValueError("post_image head ablation needs the batch (where the image ends)")
        n_heads = adapter.num_heads
        image_end = (
            None
            if self.positions == "all"
            else torch.tensor([int(p[-1]) for p in batch.image_positions])
        )
        by_layer = {layer: [h for lay, h in self.heads if lay == layer] for layer in self.layers}

        def make(layer, state):
            def fn(value):
                out = _as_heads(value.clone(), n_heads)
                if image_end is None:
                    where = torch.ones(out.shape[:2], dtype=torch.bool, device=out.device)
                else:
                    past, q = state[layer], value.shape[1]
                    where = ((past + torch.arange(q))[None, :] > image_end[:, None]).to(out.device)
                for h in by_layer[layer]:
                    fill = (
                        0.0
                        if self.means is None
                        else self.means[(layer, h)].to(out.device, out.dtype)
                    )
                    out[:, :, h] = torch.where(where[..., None], fill, out[:, :, h])
                return out.view_as(value)

            return fn

        return _head_hooks(adapter, self.layers, make)
