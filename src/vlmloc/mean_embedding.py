"""The mean visual embedding in shards (paper sec. 3.1: the mean over every visual token of the
ImageNet validation images at the LLM input). Each model job sums its shard of the image set; a
CPU job adds the sums. The one computation of these statistics: ``visual_embedding_stats`` (in
``interventions``) is the whole set as one shard, and any sharding gives the same result to
float32 precision (tested against the plain mean and std of every token)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .gather import check_gathered
from .images import open_image
from .models.base import Adapter


def shard_indices(n_images: int, shard: int, shards: int) -> list[int]:
    """Image indices of shard ``shard`` (0-based) of ``shards``: every shards-th image."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} outside 0..{shards - 1}")
    return list(range(shard, n_images, shards))


@torch.inference_mode()
def embedding_sums(
    adapter: Adapter,
    images: Sequence,
    indices: Sequence[int],
    batch_size: int = 16,
    progress: bool = False,
) -> dict:
    """Over the visual tokens of ``images[i]`` for ``i`` in ``indices``: the sum of the embeddings
    at the LLM input and of the tokens' L2 norms and squared norms (float64, so the order in which
    shards are added does not matter at float32 precision), the token count, and which images."""
    from tqdm import tqdm

    total, n_tokens, norm_sum, norm_sq_sum = None, 0, 0.0, 0.0
    indices = [int(i) for i in indices]
    starts = range(0, len(indices), batch_size)
    for start in tqdm(starts, desc="mean embedding", disable=not progress, mininterval=5):
        batch = [images[i] for i in indices[start : start + batch_size]]
        pixels = [
            adapter.pixel_values(open_image(im)).to(adapter.device, adapter.model.dtype)
            for im in batch
        ]
        feats = adapter.image_features(pixels).float()  # a list: views of any size (Qwen2.5-VL's)
        part = feats.double().sum(0).cpu()
        total = part if total is None else total + part
        norms = feats.norm(dim=-1).double()
        n_tokens += feats.shape[0]
        norm_sum += float(norms.sum())
        norm_sq_sum += float((norms**2).sum())
    return {
        "sum": total,
        "n_tokens": n_tokens,
        "norm_sum": norm_sum,
        "norm_sq_sum": norm_sq_sum,
        "indices": indices,
        "n_images": len(images),
    }


def combine_embedding_sums(parts: Sequence[dict]) -> dict:
    """The mean embedding (float32) and the mean and sample std of the token norms, from the
    shards' sums. Fails when an image of the set is missing or was summed twice."""
    if not parts:
        raise ValueError("no shards to combine")
    sizes = {p["n_images"] for p in parts}
    if len(sizes) != 1:
        raise ValueError(
            f"shards were computed over image sets of different sizes: {sorted(sizes)}"
        )
    n_images = sizes.pop()
    check_gathered(
        [i for p in parts for i in p["indices"]], range(n_images), "mean-embedding images"
    )
    sums = [p["sum"] for p in parts if p["sum"] is not None]
    n = sum(p["n_tokens"] for p in parts)
    if not n:
        raise ValueError("no images to average")
    total = torch.stack(sums).sum(0)
    s1 = sum(p["norm_sum"] for p in parts)
    s2 = sum(p["norm_sq_sum"] for p in parts)
    var = max(s2 - s1 * s1 / n, 0.0) / (n - 1) if n > 1 else float("nan")
    return {
        "mean": (total / n).float(),
        "norm_mean": s1 / n,
        "norm_std": var**0.5,
        "n_images": n_images,
        "n_tokens": n,
    }
