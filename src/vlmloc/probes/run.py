"""Positional probes end to end, without storing features: stream the train images through the
model, feed every site's probes, then stream the test images and score them.

``methods``: "ridge" (least squares on one-hot targets) and "lda" (linear discriminant
analysis), both closed forms solved from the same one-pass statistics, and "sgd" (the paper's
way, ``epochs`` passes). All share the first pass; the timing keeps apart what each needs on its
own: forward passes (counted and timed per pass) and the probes' own updates and solves.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..models.base import Adapter
from .features import select_views, stage_features
from .linear import ProbeScores, SGDProbes, StreamingRidge, probe_targets, random_control

METHODS = ("ridge", "lda", "sgd")  # ridge and lda: one pass, the same statistics


@dataclass
class ProbeSettings:
    task_text: str = "Describe the image."  # the neutral task text after the image (does not reach the visual tokens)
    views: str = "all"  # which views' tokens are probed: all | global | local (LLaVA: one global view)
    methods: tuple[str, ...] = METHODS
    epochs: int = 10  # SGD passes over the train images
    batch_size: int = 8  # images per forward pass
    sites: list[str] | None = None  # None = every site
    l2: float = 1e-3  # ridge: relative to the mean diagonal of X^T X; lda: of the pooled covariance
    ridge_dtype: str = "float64"
    lr: float = 1e-3
    optimizer: str = "adam"
    minibatch: int = 4096  # tokens per SGD step
    random_control: bool = True  # a site of random features of the LLM's width
    shuffled_control: bool = True  # heads trained on per-image shuffled positions
    seed: int = 0
    progress: bool = False  # tqdm bars over the batches of each pass

    @classmethod
    def from_config(cls, cfg: dict, batch_size: int, progress: bool = True) -> ProbeSettings:
        """From the config block ``probes`` as the probe job's params hold it: the settings of a
        method that does not run (``epochs`` and ``sgd`` without SGD, ``l2`` and ``ridge_dtype``
        without a closed form) may be left out and keep their defaults."""
        sgd, controls = cfg.get("sgd", {}), cfg.get("controls", {})
        optional = {"epochs": cfg.get("epochs"), "l2": cfg.get("l2"), "ridge_dtype": cfg.get("ridge_dtype"),
                    "lr": sgd.get("lr"), "optimizer": sgd.get("optimizer"), "minibatch": sgd.get("minibatch")}  # fmt: skip
        return cls(task_text=cfg["task_text"], views=cfg["views"], methods=tuple(cfg["methods"]), batch_size=batch_size,
                   random_control=controls.get("random", True), shuffled_control=controls.get("shuffled", True),
                   seed=cfg["seed"], progress=progress, **{k: v for k, v in optional.items() if v is not None})  # fmt: skip


@dataclass
class ProbeRun:
    summary: list[dict]  # per method, site, variant: accuracies (ProbeScores.summary_rows)
    cells: list[dict]  # per method, site, variant, grid cell
    timing: list[dict] = field(default_factory=list)  # per method: forward passes and seconds


def _sync(adapter):
    if adapter.device.type == "cuda":
        torch.cuda.synchronize(adapter.device)


def _stream(adapter, images, settings, order=None, first: int = 0):
    """Batches of the images (in ``order``), with the views selected and the controls added.
    Token labels carry ``first`` + the image's index in ``images``: the test images count on
    after the train images, so no test image shares a train image's random features or
    shuffled positions (seeded per image index)."""
    order = np.arange(len(images)) if order is None else np.asarray(order)
    imgs = [images[i] for i in order]
    width = adapter.model.config.text_config.hidden_size
    index = torch.from_numpy(order).long() + first
    for batch in stage_features(adapter, imgs, settings.task_text, settings.batch_size, settings.sites):
        for lab in batch.labels.values():
            lab.image = index[lab.image]
        batch.image_ids = [int(index[i]) for i in batch.image_ids]
        batch = select_views(batch, settings.views)
        if settings.random_control:
            batch = random_control(batch, width, settings.seed)
        yield batch


def _timed(adapter, stream):
    """Each batch of ``stream`` with the seconds its forward pass took (device synchronised)."""
    while True:
        _sync(adapter)
        t0 = time.perf_counter()
        batch = next(stream, None)
        _sync(adapter)
        if batch is None:
            return
        yield batch, time.perf_counter() - t0


def _bar(images, settings, desc):
    from tqdm import tqdm

    total = -(-len(images) // settings.batch_size)
    return lambda it: tqdm(it, total=total, desc=desc, disable=not settings.progress, mininterval=5)


def fit_and_score(adapter: Adapter, train_images: Sequence, test_images: Sequence,
                  settings: ProbeSettings | None = None) -> ProbeRun:  # fmt: skip
    settings = settings or ProbeSettings()
    unknown = set(settings.methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown probe methods {sorted(unknown)}; known: {METHODS}")
    if settings.views == "local" and not adapter.has_local_views:
        raise ValueError(f"probes.views: local, but the {adapter.family} model has no local views (tiles)")
    closed = [m for m in ("ridge", "lda") if m in settings.methods]
    ridge = StreamingRidge(getattr(torch, settings.ridge_dtype)) if closed else None
    sgd = (SGDProbes(settings.lr, settings.optimizer, minibatch=settings.minibatch, seed=settings.seed)
           if "sgd" in settings.methods else None)  # fmt: skip
    epochs = settings.epochs if sgd is not None else 1
    seconds = {"forward": [], "stats": 0.0, "ridge": 0.0, "lda": 0.0, "sgd": 0.0}
    rng = np.random.default_rng(settings.seed)
    for epoch in range(epochs):
        order = rng.permutation(len(train_images)) if epoch else np.arange(len(train_images))
        t_pass = 0.0
        bar = _bar(train_images, settings, f"probes: train pass {epoch + 1}/{epochs}")
        for batch, dt in bar(_timed(adapter, _stream(adapter, train_images, settings, order))):
            t_pass += dt
            per_grid = {g: probe_targets(lab, settings.shuffled_control, settings.seed) for g, lab in batch.labels.items()}
            for name, X in batch.features.items():
                if not len(X):  # views "local" and a batch without tiles
                    continue
                targets = per_grid[batch.sites[name].grid]
                if ridge is not None and epoch == 0:
                    t0 = time.perf_counter()
                    ridge.update(name, X, targets)
                    _sync(adapter)
                    seconds["stats"] += time.perf_counter() - t0
                if sgd is not None:
                    t0 = time.perf_counter()
                    sgd.partial_fit(name, X, targets)
                    _sync(adapter)
                    seconds["sgd"] += time.perf_counter() - t0
        seconds["forward"].append(t_pass)
    probes = {}
    for method in closed:
        t0 = time.perf_counter()
        weights = ridge.solve(settings.l2) if method == "ridge" else ridge.solve_lda(settings.l2)
        _sync(adapter)
        seconds[method] = seconds["stats"] + time.perf_counter() - t0
        probes[method] = lambda name, X, w=weights: ridge.predict(name, X, w)
    if sgd is not None:
        probes["sgd"] = sgd.predict
    scores = {m: ProbeScores() for m in probes}
    t_test = 0.0
    bar = _bar(test_images, settings, "probes: test pass")
    for batch, dt in bar(_timed(adapter, _stream(adapter, test_images, settings, first=len(train_images)))):
        t_test += dt
        for name, X in batch.features.items():
            if not len(X):
                continue
            site, labels = batch.sites[name], batch.labels_of(name)
            for method, predict in probes.items():
                scores[method].update(site, labels, predict(name, X))
    summary, cells, timing = [], [], []
    n_train, n_test = len(train_images), len(test_images)
    for method, sc in scores.items():
        passes = epochs if method == "sgd" else 1
        summary += [{"method": method, **r} for r in sc.summary_rows()]
        cells += [{"method": method, **r} for r in sc.cell_rows()]
        forward = float(sum(seconds["forward"][:passes]))
        timing.append({"method": method, "train_passes": passes, "train_forwards": passes * n_train,
                       "test_forwards": n_test, "forward_s": forward, "probe_s": seconds[method],
                       "train_s": forward + seconds[method], "test_forward_s": t_test})  # fmt: skip
    return ProbeRun(summary, cells, timing)
