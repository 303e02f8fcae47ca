"""Positional probes end to end, without storing features: stream the train images through the
model, feed every site's probes, then stream the test images and score them.

``methods``: "ridge" (least squares on one-hot targets) and "lda" (linear discriminant
analysis), both closed forms solved from the same one-pass statistics, and "sgd" (the paper's
way, ``epochs`` passes). All share the first pass; the timing keeps apart what each needs on its
own: forward passes (counted and timed per pass) and the probes' own updates and solves.

``validation_fraction`` of the train images (seeded, disjoint) are held out: the probes are
trained on the rest, and the held-out images are scored like the test images (rows with
``split`` "validation"), so that the best layer is chosen on them and reported on the test
images. ``untrained_control``: the same probes, on the same images and sites, of the same
architecture with re-initialised weights (the model class's own initialisation under
``untrained_seed``): rows with ``variant`` "untrained". What an untrained model already decodes
(from position embeddings, or the raster order through causal attention and RoPE) is
architecture, not learning.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..defaults import defaults, with_defaults
from ..models.base import Adapter
from .features import largest_grid, select_views, stage_features
from .linear import ProbeScores, SGDProbes, StreamingRidge, probe_targets, random_control

METHODS = ("ridge", "lda", "sgd")  # ridge and lda: one pass, the same statistics


_P = defaults("probes")  # the config schema's defaults (vlmloc.defaults), not restated here


@dataclass
class ProbeSettings:
    """A probe job's settings; each default is the config schema's (``probes``)."""

    task_text: str = _P[
        "task_text"
    ]  # the neutral text after the image (never reaches the visual tokens)
    views: str = _P["views"]  # which views' tokens are probed: all | global | local (LLaVA: one)
    methods: tuple[str, ...] = tuple(_P["methods"])
    epochs: int = _P["epochs"]  # SGD passes over the train images
    batch_size: int = 8  # images per forward pass (the job's: models.<m>.batch_size)
    sites: list[str] | None = None  # None = every site
    l2: float = _P[
        "l2"
    ]  # ridge: relative to the mean diagonal of X^T X; lda: of the pooled covariance
    ridge_dtype: str = _P["ridge_dtype"]
    lr: float = _P["sgd"]["lr"]
    optimizer: str = _P["sgd"]["optimizer"]
    minibatch: int = _P["sgd"]["minibatch"]  # tokens per SGD step
    random_control: bool = _P["controls"]["random"]  # a site of random features of the LLM's width
    shuffled_control: bool = _P["controls"]["shuffled"]  # heads trained on shuffled positions
    untrained_control: bool = _P["controls"]["untrained"]  # the same probes, re-initialised model
    untrained_seed: int = _P["controls"]["untrained_seed"]  # the re-initialised model's seed
    untrained_methods: tuple[str, ...] | None = None  # None = methods
    validation_fraction: float = _P["validation_fraction"]  # of the train images: picks the layer
    bootstrap: dict | None = None  # the intervals over images (ProbeScores.summary_rows)
    seed: int = _P["seed"]
    progress: bool = False  # tqdm bars over the batches of each pass

    @classmethod
    def from_config(cls, cfg: dict, batch_size: int, progress: bool = True) -> ProbeSettings:
        """From the config block ``probes`` as the probe job's params hold it: the settings of a
        method that does not run (``epochs`` and ``sgd`` without SGD, ``l2`` and ``ridge_dtype``
        without a closed form) may be left out and keep their defaults."""
        cfg = with_defaults("probes", cfg)
        sgd, controls = cfg["sgd"], cfg["controls"]
        untrained_methods = controls["untrained_methods"]
        return cls(
            task_text=cfg["task_text"],
            views=cfg["views"],
            methods=tuple(cfg["methods"]),
            batch_size=batch_size,
            epochs=cfg["epochs"],
            l2=cfg["l2"],
            ridge_dtype=cfg["ridge_dtype"],
            lr=sgd["lr"],
            optimizer=sgd["optimizer"],
            minibatch=sgd["minibatch"],
            random_control=controls["random"],
            shuffled_control=controls["shuffled"],
            untrained_control=controls["untrained"],
            untrained_seed=controls["untrained_seed"],
            untrained_methods=tuple(untrained_methods) if untrained_methods else None,
            validation_fraction=cfg["validation_fraction"],
            bootstrap=cfg.get("bootstrap"),
            seed=cfg["seed"],
            progress=progress,
        )


@dataclass
class ProbeRun:
    summary: list[
        dict
    ]  # per method, site, variant, split (test / validation): accuracies (ProbeScores.summary_rows)
    cells: list[dict]  # per method, site, variant, grid cell (test images)
    timing: list[dict] = field(
        default_factory=list
    )  # per method and model (trained / untrained): passes and seconds


def validation_split(n_train: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices the probes are trained on, held-out validation indices) of ``n_train`` train
    images: a seeded random ``fraction`` (at least one image when the fraction is above 0),
    disjoint, each sorted."""
    if not 0 <= fraction < 1:
        raise ValueError(f"probes.validation_fraction must be in [0, 1), got {fraction}")
    n_val = max(1, round(fraction * n_train)) if fraction > 0 else 0
    if n_train - n_val < 1:
        raise ValueError(
            f"probes.validation_fraction {fraction} of {n_train} train images leaves none to train on"
        )
    order = np.random.default_rng([seed, 7]).permutation(n_train)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def untrained_adapter(adapter: Adapter, seed: int) -> Adapter:
    """The same architecture with re-initialised weights: the model class built from the loaded
    model's config (its dtype, attention implementation and device) under ``seed``, so with the
    class's own initialisation (transformers' ``_init_weights``: e.g. CLIP's position embedding
    normal, InternViT's zero). The tokenizer, preprocessing and adapter options stay. The
    global random state is left as it was."""
    model = adapter.model
    devices = [adapter.device] if adapter.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.device(adapter.device):
        torch.manual_seed(seed)
        fresh = type(model)._from_config(model.config, dtype=model.dtype)
    fresh.eval()
    system_prompt = adapter.__dict__.get("system_prompt")
    return type(adapter)(
        fresh,
        adapter.tokenizer,
        adapter.preprocessor,
        system_prompt=system_prompt,
        **adapter.options,
    )


def _sync(adapter):
    if adapter.device.type == "cuda":
        torch.cuda.synchronize(adapter.device)


def _stream(adapter, images, settings, order=None, first: int = 0, grid=None):
    """Batches of the images (in ``order``), with the views selected and the controls added.
    Token labels carry ``first`` + the image's index in ``images``: the test images count on
    after the train images, so no test image shares a train image's random features or
    shuffled positions (seeded per image index)."""
    order = np.arange(len(images)) if order is None else np.asarray(order)
    imgs = [images[i] for i in order]
    width = adapter.model.config.text_config.hidden_size
    index = torch.from_numpy(order).long() + first
    for batch in stage_features(
        adapter, imgs, settings.task_text, settings.batch_size, settings.sites, grid=grid
    ):
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


def fit_and_score(
    adapter: Adapter,
    train_images: Sequence,
    test_images: Sequence,
    settings: ProbeSettings | None = None,
) -> ProbeRun:
    """Probes of every site trained on the train images less the validation ones, scored on the
    validation and the test images; with ``untrained_control``, the same again on the
    re-initialised model (``untrained_methods``, no random-feature or shuffled control: those do
    not depend on the weights' training)."""
    settings = settings or ProbeSettings()
    unknown = (set(settings.methods) | set(settings.untrained_methods or ())) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown probe methods {sorted(unknown)}; known: {METHODS}")
    if settings.views == "local" and not adapter.has_local_views:
        raise ValueError(
            f"probes.views: local, but the {adapter.family} model has no local views (tiles)"
        )
    fit, val = validation_split(len(train_images), settings.validation_fraction, settings.seed)
    splits = {
        "fit": [train_images[i] for i in fit],
        "validation": [train_images[i] for i in val],
        "test": list(test_images),
    }
    # a family whose grid follows the image's size: one set of classes, the largest grid's
    grid = (
        largest_grid(adapter, [*train_images, *test_images]) if adapter.dynamic_resolution else None
    )
    run = _probe(adapter, splits, settings, "true", grid)
    if settings.untrained_control:
        untrained = untrained_adapter(adapter, settings.untrained_seed)
        plain = replace(
            settings,
            methods=settings.untrained_methods or settings.methods,
            random_control=False,
            shuffled_control=False,
        )
        other = _probe(untrained, splits, plain, "untrained", grid)
        del untrained
        if adapter.device.type == "cuda":
            torch.cuda.empty_cache()
        run = ProbeRun(
            run.summary + other.summary, run.cells + other.cells, run.timing + other.timing
        )
    return run


def _fit(adapter: Adapter, images: list, settings: ProbeSettings, grid=None) -> tuple:
    """Train every method's probes on ``images``: the closed forms' statistics in the first pass,
    SGD over ``epochs`` passes (each after the first in a new order). Returns the probes (method
    -> predict(site name, X)), the seconds spent (per pass forward, per method fit) and the
    passes run."""
    closed = [m for m in ("ridge", "lda") if m in settings.methods]
    ridge = StreamingRidge(getattr(torch, settings.ridge_dtype)) if closed else None
    sgd = (
        SGDProbes(settings.lr, settings.optimizer, minibatch=settings.minibatch, seed=settings.seed)
        if "sgd" in settings.methods
        else None
    )
    epochs = settings.epochs if sgd is not None else 1
    seconds = {"forward": [], "stats": 0.0, "ridge": 0.0, "lda": 0.0, "sgd": 0.0}
    rng = np.random.default_rng(settings.seed)
    for epoch in range(epochs):
        order = rng.permutation(len(images)) if epoch else np.arange(len(images))
        t_pass = 0.0
        bar = _bar(images, settings, f"probes: train pass {epoch + 1}/{epochs}")
        for batch, dt in bar(_timed(adapter, _stream(adapter, images, settings, order, grid=grid))):
            t_pass += dt
            per_grid = {
                g: probe_targets(lab, settings.shuffled_control, settings.seed)
                for g, lab in batch.labels.items()
            }
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
    return probes, seconds, epochs


def _score(adapter: Adapter, probes: dict, splits: dict, settings: ProbeSettings, grid=None):
    """Every method's probes scored on the validation and the test images (one pass each), and
    the seconds of each pass."""
    scores = {(m, split): ProbeScores() for m in probes for split in ("validation", "test")}
    t_split = {"validation": 0.0, "test": 0.0}
    n_fit = len(splits["fit"])
    first = {"validation": n_fit, "test": n_fit + len(splits["validation"])}
    for split in ("validation", "test"):
        images = splits[split]
        bar = _bar(images, settings, f"probes: {split} pass")
        for batch, dt in bar(
            _timed(adapter, _stream(adapter, images, settings, first=first[split], grid=grid))
        ):
            t_split[split] += dt
            for name, X in batch.features.items():
                if not len(X):
                    continue
                site, labels = batch.sites[name], batch.labels_of(name)
                for method, predict in probes.items():
                    scores[method, split].update(site, labels, predict(name, X))
    return scores, t_split


def _probe(
    adapter: Adapter, splits: dict[str, list], settings: ProbeSettings, variant: str, grid=None
) -> ProbeRun:
    """One model's probes: trained on ``splits["fit"]``, scored on the validation and test
    images; the true-position heads' rows get ``variant``."""
    probes, seconds, epochs = _fit(adapter, splits["fit"], settings, grid)
    scores, t_split = _score(adapter, probes, splits, settings, grid)
    summary, cells, timing = [], [], []
    n_train = len(splits["fit"])

    def tagged(r, **extra):
        return {**r, "variant": variant if r["variant"] == "true" else r["variant"], **extra}

    for method in probes:
        passes = epochs if method == "sgd" else 1
        for split in ("validation", "test"):
            summary += [
                {"method": method, **tagged(r, split=split)}
                for r in scores[method, split].summary_rows(settings.bootstrap)
            ]
        cells += [{"method": method, **tagged(r)} for r in scores[method, "test"].cell_rows()]
        forward = float(sum(seconds["forward"][:passes]))
        timing.append(
            {
                "method": method,
                "variant": variant,
                "train_passes": passes,
                "train_forwards": passes * n_train,
                "validation_forwards": len(splits["validation"]),
                "test_forwards": len(splits["test"]),
                "forward_s": forward,
                "probe_s": seconds[method],
                "train_s": forward + seconds[method],
                "validation_forward_s": t_split["validation"],
                "test_forward_s": t_split["test"],
            }
        )
    return ProbeRun(summary, cells, timing)
