"""A plain reference for the closed-form positional probes of ``run.fit_and_score``: kept in the
code to check the fast path's numbers (tests/test_probe_reference.py) and its speed-up
(scripts/benchmark.py --experiment probes). Slow and memory-hungry on purpose; not for real runs.

What differs from the fast path, on purpose:

- each image runs ALONE through the stock model on the FULL chat prompt (``adapter.encode``),
  not in left-padded batches of image prefixes;
- the features come from transformers' own outputs: ``output_hidden_states`` of the model (LLM
  layers) and of the vision tower (backbone layers), ``adapter.image_features`` (projector). Only
  the last decoder layer needs a hook: transformers reports it after the final norm, our
  ``llm.<L-1>`` is before it;
- every site's features of every image are STORED (stacked, on the CPU), then each site and head
  is fitted directly on them: least squares with ``torch.linalg.lstsq`` (ridge as extra rows) or
  LDA from class means and the pooled covariance; no streamed statistics.

Same conventions as ``StreamingRidge``: one-hot targets with an unpenalised bias column, the l2
penalty relative to the mean diagonal of X^T X (ridge) or of the pooled covariance (LDA).
Views "all", no controls.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..images import open_image
from ..models.base import Adapter, ImageLayout
from .features import TokenLabels, grid_labels, largest_grid


@dataclass
class StoredFeatures:
    features: dict[
        str, torch.Tensor
    ]  # site -> (tokens of every image, width), CPU, the model's dtype
    labels: dict[str, TokenLabels]  # grid ("vision", "llm") -> one label per token

    @property
    def nbytes(self) -> int:
        return sum(x.numel() * x.element_size() for x in self.features.values())


def _cat_labels(parts: list[TokenLabels]) -> TokenLabels:
    cat = lambda key: torch.cat([getattr(p, key) for p in parts])  # noqa: E731
    return TokenLabels(
        cat("image"), cat("view"), cat("kind"), cat("row"), cat("col"), parts[0].rows, parts[0].cols
    )


@torch.inference_mode()
def features_of_one_image(
    adapter: Adapter, image, task_text: str
) -> tuple[dict[str, torch.Tensor], ImageLayout]:
    """Every site's features of one PIL image, from the stock model run on the full prompt, and
    the image's layout."""
    enc = adapter.encode([image], [task_text])
    inputs = {k: v.to(adapter.device) for k, v in enc.inputs.items()}
    last = {}

    def keep_last(_module, _inputs, output):
        last["x"] = output[0] if isinstance(output, tuple | list) else output

    handle = adapter.decoder_layers[-1].register_forward_hook(keep_last)
    try:
        out = adapter.model(**inputs, output_hidden_states=True)
    finally:
        handle.remove()
    vis = adapter.vision_tower(**adapter.vision_tower_inputs(inputs), output_hidden_states=True)
    feats = {}
    for layer in range(len(adapter.vision_layers)):  # hidden_states[0] is the embedding
        # each view's patches row-major (CLIP's and InternViT's CLS dropped, Qwen's windows undone)
        feats[f"vision.{layer}"] = adapter.vision_tokens(vis.hidden_states[layer + 1], enc.layouts)
    pixels = adapter.pixel_values(image).to(adapter.device, adapter.model.dtype)
    feats["projector"] = adapter.image_features(pixels)
    pos = enc.image_positions[0].to(adapter.device)
    for layer in range(adapter.num_layers - 1):
        feats[f"llm.{layer}"] = out.hidden_states[layer + 1][0, pos]
    feats[f"llm.{adapter.num_layers - 1}"] = last["x"][0, pos]  # before the final norm
    return {name: x.cpu() for name, x in feats.items()}, enc.layouts[0]


def store_features(
    adapter: Adapter, images: Sequence, task_text: str, grid: tuple[int, int] | None = None
) -> StoredFeatures:
    """Every site's features of every image (PIL images or paths), one image at a time, stacked.
    ``grid``: the classes of a family whose grid follows the image's size (``grid_labels``)."""
    per_site: dict[str, list[torch.Tensor]] = {}
    labels: dict[str, list[TokenLabels]] = {"llm": [], "vision": []}
    for i, image in enumerate(images):
        feats, layout = features_of_one_image(adapter, open_image(image), task_text)
        for name, x in feats.items():
            per_site.setdefault(name, []).append(x)
        labels["llm"].append(grid_labels([layout], [i], grid=grid))
        labels["vision"].append(grid_labels([layout], [i], adapter.vision_merge, grid))
    stored = StoredFeatures(
        {n: torch.cat(xs) for n, xs in per_site.items()},
        {g: _cat_labels(p) for g, p in labels.items()},
    )
    for name, x in stored.features.items():
        n = len(stored.labels[_grid(name)])
        if len(x) != n:
            raise RuntimeError(f"{name}: {len(x)} tokens, labels for {n}")
    return stored


def _grid(site: str) -> str:
    return "vision" if site.startswith("vision.") else "llm"


def fit_ridge(X: torch.Tensor, y: torch.Tensor, classes: int, l2: float) -> torch.Tensor:
    """Weights (width + 1, classes), bias last, of min ||[X 1] W - onehot(y)||^2 + lam ||W without
    bias||^2, lam = l2 x the mean over features of sum x^2 (the mean diagonal of X^T X), solved by
    ``lstsq`` on the stacked features with sqrt(lam) I as extra rows (none when l2 = 0)."""
    X = X.double()
    n, d = X.shape
    A = torch.cat([X, torch.ones(n, 1, dtype=torch.float64)], 1)
    B = torch.nn.functional.one_hot(y, classes).double()
    if l2:
        lam = l2 * float((X**2).sum(0).mean())
        A = torch.cat([A, lam**0.5 * torch.eye(d, d + 1, dtype=torch.float64)])
        B = torch.cat([B, torch.zeros(d, classes, dtype=torch.float64)])
    return torch.linalg.lstsq(A, B, driver="gelsd").solution


def fit_lda(X: torch.Tensor, y: torch.Tensor, classes: int, l2: float) -> torch.Tensor:
    """LDA weights (width + 1, classes), bias last: class means, pooled within-class covariance
    over n - classes degrees of freedom plus l2 x its mean diagonal, priors = class shares (a class
    never seen gets bias -inf: never predicted)."""
    X = X.double()
    n, d = X.shape
    means = torch.zeros(d, classes, dtype=torch.float64)
    centred = X.clone()
    for k in range(classes):
        mine = y == k
        if mine.any():
            means[:, k] = X[mine].mean(0)
            centred[mine] -= means[:, k]
    cov = centred.T @ centred / max(n - classes, 1)
    cov += l2 * float(cov.diagonal().mean()) * torch.eye(d, dtype=torch.float64)
    W = torch.linalg.solve(cov, means)
    prior = torch.bincount(y, minlength=classes).double() / n
    bias = -0.5 * (means * W).sum(0) + torch.log(prior)
    return torch.cat([W, bias[None]])


FITS = {"ridge": fit_ridge, "lda": fit_lda}


@dataclass
class ReferenceRun:
    summary: list[dict]  # per method and site: acc_row, acc_col, n_tokens (test)
    stored_bytes: dict[str, int]  # "train", "test": features held in memory
    widths: dict[str, int]  # site -> feature width
    seconds: dict[str, float] = field(
        default_factory=dict
    )  # "features" (forwards), "fit", "predict"


def reference_fit_and_score(
    adapter: Adapter,
    train_images: Sequence,
    test_images: Sequence,
    methods: Sequence[str] = ("lda",),
    task_text: str = "Describe the image.",
    l2: float = 1e-3,
) -> ReferenceRun:
    """Per method and site, the test accuracy of row and column probes fitted on the stored
    train features (the numbers ``fit_and_score`` reports as variant "true")."""
    t0 = time.perf_counter()
    # a family whose grid follows the image's size: one set of classes, the largest grid's
    images = [*train_images, *test_images]
    grid = largest_grid(adapter, images) if adapter.dynamic_resolution else None
    train = store_features(adapter, train_images, task_text, grid)
    test = store_features(adapter, test_images, task_text, grid)
    seconds = {"features": time.perf_counter() - t0, "fit": 0.0, "predict": 0.0}
    summary = []
    for method in methods:
        for site, X in train.features.items():
            lab, lab_test = train.labels[_grid(site)], test.labels[_grid(site)]
            row = {"method": method, "site": site, "n_tokens": len(lab_test)}
            for axis, classes in (("row", lab.rows), ("col", lab.cols)):
                t0 = time.perf_counter()
                W = FITS[method](X, getattr(lab, axis), classes, l2)
                seconds["fit"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                pred = (test.features[site].double() @ W[:-1] + W[-1]).argmax(1)
                row[f"acc_{axis}"] = float((pred == getattr(lab_test, axis)).double().mean())
                seconds["predict"] += time.perf_counter() - t0
            summary.append(row)
    widths = {site: x.shape[1] for site, x in train.features.items()}
    return ReferenceRun(summary, {"train": train.nbytes, "test": test.nbytes}, widths, seconds)
