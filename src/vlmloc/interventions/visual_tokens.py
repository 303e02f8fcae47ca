"""Edits of the visual token embeddings at the LLM input (after the multimodal projector, before
positional encoding and the decoder), paper sec. 3.1.

The edit runs in a forward hook on the adapter's projector site. Its value, flattened, holds the batch's visual
tokens image after image (view after view) in sequence order, which is exactly the order the
model scatters them into the image-token positions. The hook fires once per generate call (at
prefill) and once per forward. Subclasses only say what to do with one query's tokens; the
token-ablation, shuffle and duplication experiments extend ``VisualTokenEdit``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch

from ..mean_embedding import combine_embedding_sums, embedding_sums
from ..models.base import Adapter, Encoded
from .base import BatchContext, hooked


class VisualTokenEdit:
    """Base class: ``edit_query(query_id, tokens, layout) -> tokens`` for each query of a batch.

    ``tokens`` is that query's (n_tokens, hidden) slice; return a tensor of the same shape.
    The edit acts where the visual tokens enter the LLM: in a "full" or "prefix" run. In a
    "suffix" phase they are already in the KV cache, so there is nothing to do.
    """

    touches_prefix = True

    def edit_query(self, query_id: int, tokens: torch.Tensor, layout) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, adapter: Adapter, batch: BatchContext | Encoded):
        if isinstance(batch, Encoded):
            batch = BatchContext.of(batch)
        if batch.phase == "suffix":
            return contextlib.nullcontext()
        return self._hooked(adapter, batch)

    @contextlib.contextmanager
    def _hooked(self, adapter: Adapter, batch: BatchContext):
        query_ids = batch.rows
        sizes = [lay.n_tokens for lay in batch.layouts]

        def edit(output):
            flat = output.reshape(-1, output.shape[-1])
            if flat.shape[0] != sum(sizes):
                raise RuntimeError(
                    f"projector produced {flat.shape[0]} tokens, the batch has {sum(sizes)}"
                )
            parts = list(torch.split(flat, sizes))
            for k, (qid, lay) in enumerate(zip(query_ids, batch.layouts, strict=True)):
                parts[k] = self.edit_query(qid, parts[k], lay)
            return torch.cat(parts).reshape(output.shape)

        with hooked(
            adapter, {"projector": edit}
        ):  # the adapter's projector site: its tokens in sequence order
            yield


class ReplaceVisualTokens(VisualTokenEdit):
    """Replace the chosen visual tokens of each query with ``value`` (e.g. the model's mean
    visual embedding). ``indices[q]`` are image-token indices (0..n_tokens-1) for query q."""

    def __init__(self, indices: Sequence[np.ndarray], value: torch.Tensor):
        self.indices = indices
        self.value = value

    def edit_query(self, query_id, tokens, layout):
        idx = torch.as_tensor(
            np.asarray(self.indices[query_id], dtype=np.int64), device=tokens.device
        )
        if idx.numel() == 0:
            return tokens
        out = tokens.clone()
        out[idx] = self.value.to(device=tokens.device, dtype=tokens.dtype)
        return out


class CopyVisualTokens(VisualTokenEdit):
    """Per query q, token ``targets[q][i]`` gets the embedding that token ``sources[q][i]`` had
    before the edit (all reads before any write). A permutation of a set of tokens is
    ``targets = set, sources = permuted set`` (a shuffle); copies of object tokens into a ring
    around it are ``targets = ring, sources = drawn object tokens`` (containerization)."""

    def __init__(self, targets: Sequence[np.ndarray], sources: Sequence[np.ndarray]):
        if len(targets) != len(sources):
            raise ValueError(f"{len(targets)} target lists for {len(sources)} source lists")
        for t, s in zip(targets, sources, strict=True):
            if len(t) != len(s):
                raise ValueError(f"{len(t)} targets for {len(s)} sources")
            if len(np.unique(t)) != len(t):
                raise ValueError("a token is a target twice")
        self.targets, self.sources = targets, sources

    def edit_query(self, query_id, tokens, layout):
        dst = torch.as_tensor(
            np.asarray(self.targets[query_id], dtype=np.int64), device=tokens.device
        )
        if dst.numel() == 0:
            return tokens
        src = torch.as_tensor(
            np.asarray(self.sources[query_id], dtype=np.int64), device=tokens.device
        )
        out = tokens.clone()
        out[dst] = tokens[src]
        return out


@torch.inference_mode()
def mean_visual_embedding(adapter: Adapter, images: Sequence, batch_size: int = 16) -> torch.Tensor:
    """Mean over every visual token of ``images`` (paths or PIL images) at the LLM input.

    The paper computes it once over the ImageNet validation set; any image set of the domain works.
    """
    return visual_embedding_stats(adapter, images, batch_size)["mean"]


def visual_embedding_stats(
    adapter: Adapter, images: Sequence, batch_size: int = 16, progress: bool = False
) -> dict:
    """Over every visual token of ``images`` at the LLM input: the mean embedding, and the mean
    and std of the tokens' L2 norms (the dataset-wide register-token threshold): the workflow's
    sharded computation (``mean_embedding``) with the whole set as one shard, the same numbers."""
    sums = embedding_sums(
        adapter, images, range(len(images)), batch_size=batch_size, progress=progress
    )
    return combine_embedding_sums([sums])


def random_token_indices(n_tokens: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` distinct image-token indices drawn uniformly (the paper's random-token control)."""
    return np.sort(rng.choice(n_tokens, size=min(k, n_tokens), replace=False))
