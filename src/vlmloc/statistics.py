"""The statistics every table shares: a percentile bootstrap of a mean, a paired bootstrap of
several curves' means (samples resampled together, seeds within), a one-sided permutation p-value."""

from __future__ import annotations

import numpy as np


def bootstrap_ci(
    values: np.ndarray, resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (same units as ``values``)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def chunks(total: int, size: int = 20):
    for start in range(0, total, size):
        yield min(size, total - start)


def permutation_p(observed: float, null: np.ndarray) -> float:
    """One-sided p-value of ``observed`` against null draws, (1 + #{null >= observed}) / (1 + n)."""
    null = np.asarray(null, dtype=float)
    null = null[~np.isnan(null)]
    if np.isnan(observed) or not len(null):
        return np.nan
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + len(null)))


def paired_mean_draws(mats: list[np.ndarray], resamples: int, seed: int) -> list[np.ndarray]:
    """Bootstrap draws of each matrix's mean (samples x seeds): every draw resamples the samples
    (the same rows for every matrix: paired) and, per matrix, its seeds (columns)."""
    n = mats[0].shape[0]
    rng = np.random.default_rng(seed)
    out: list[list[np.ndarray]] = [[] for _ in mats]
    for size in chunks(int(resamples), 200):
        r = rng.integers(0, n, (size, n))
        for j, a in enumerate(mats):
            cols = a[r].mean(1)  # (size, seeds): each seed's mean over the resampled samples
            k = a.shape[1]
            s = rng.integers(0, k, (size, k)) if k > 1 else np.zeros((size, 1), dtype=int)
            out[j].append(np.take_along_axis(cols, s, 1).mean(1))
    return [np.concatenate(o) for o in out]
