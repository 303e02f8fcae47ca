"""One benchmark for every experiment: the fast path against the naive reference kept in the code,
the fraction of this machine's matrix-multiply rate the fast path reaches, and where its time goes.

    python scripts/benchmark.py --experiment NAME|all [--family llava|internvl] [--n 2] [--pairs 1]
                                [--batch-size 8] [--hidden 1024] [--layers 4] [--threads 1]
                                [--device cpu] [--dtype float32] [--model-dir checkpoints/toy_llava]

The model is a tiny random-weight one with the REAL token geometry (``vlmloc.models.tiny``):
LLaVA at 336 px, patch 14 -> 24 x 24 = 576 visual tokens; InternVL with 448 px tiles, patch 14 ->
256 tokens per view (``--max-tiles`` tiles and the thumbnail for a wide image); an LLM ``--hidden``
wide (heads of ``--head-dim`` 128; InternVL: grouped-query attention, half as many key-value heads),
``--layers`` deep, MLP ``--mlp`` x hidden, so that its matrix products are large enough for the
machine's rate to mean something. The vision tower is small (``--vision-hidden``): its FLOPs are
counted, and they are a small share. The samples are wide shapes scenes (the demo's
``shapes_wide``: InternVL gives each 2 tiles + the thumbnail, 768 visual tokens) on disk, with their
exact object-removed images.

``--real-config llava15_7b|llava15_13b|internvl35_8b|qwen25_vl_7b --layers 2`` builds instead a
paper model at its REAL width (``vlmloc.models.real_width``: the published hidden size, heads,
key-value heads, MLP, vocabulary with the added tokens, vision tower width and geometry), only
``--layers`` decoder and ``--vision-layers`` vision layers deep, random weights, with the real
tokenizer where ``make tokenizers`` wrote it (``resources/tokenizers``, ``--tokenizer-cache``), else
the builder's BPE filled with placeholders to the real tokenizer's length. At that width on a CPU,
``--mediation-heads edges`` patches 4 heads per layer (the key-value groups' edges) instead of all,
and ``--max-new`` caps the generated tokens. Each experiment's note gives the process's peak
resident memory so far (``getrusage``).

Per experiment, from ONE run (the naive reference first, then the fast path, after a warm-up):

- the ratio naive / fast, and whether the answers agree: the share of identical generated answers,
  or the largest |difference| of the scores (mediation's nll, head ablation's gold nll, the
  probes' accuracies). The references: ``experiments.reference.run_conditions_naive`` (one
  ``generate`` per sample, condition and task, the whole prompt each time) for the generating
  experiments, ``experiments.reference.mediate_pair_reference`` (one full forward per head) and
  ``probes.reference.reference_fit_and_score`` (one image at a time, features stored);
- the floor fraction: the FLOPs the fast path cannot skip (``vlmloc.workload``'s yardstick with
  this run's real token counts: the vision tower once per view, each image prefix once per run of
  conditions that share it, each question, each generated token counted from the answers,
  attention's quadratic term) over fast wall time x this machine's matrix-multiply rate, measured
  in the same run with the model's dtype and shapes (prefix tokens x hidden @ hidden x MLP);
- where the fast path's time goes: the vision tower and projector, LLM calls with more than one
  new token (prefill: prefixes, questions, teacher-forced answers), LLM calls with one (decode),
  and the rest (Python, generate's bookkeeping, preprocessing, the logits): timers in forward
  hooks, with ``torch.cuda.synchronize`` on a GPU.

The fast path runs as the model job runs it: ``run_conditions`` (each batch's image prefix once
per run of conditions that share it) inside ``VisionCache.installed``, ``mediate_pair``,
``fit_and_score``. Each experiment runs a few of its conditions (``SETTINGS``, ``FIRST``), not the
paper's full list: token ablation has no integrated-gradients conditions (IG is timed by
scripts/ig_steps.py), the knockout one random control. Printed: one table row per experiment
(markdown), with notes below it. It exits with status 1 if any fast path disagrees with its reference.

On a shared CPU, pass ``--threads 1``: torch's threads spin-wait for each other while other jobs
hold the cores (a 600-token prefill took 10x longer with 2 threads than with 1 on the 2-core
reference machine under load). The matrix-multiply rate is measured with the same threads, so
the floor fraction stays fair; the ratio naive / fast is not corrected for load that changes
between the two runs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import transformers
from PIL import Image

from vlmloc.data.coco import encode_mask
from vlmloc.data.shapes import ShapesSpec, render_scene
from vlmloc.defaults import with_defaults
from vlmloc.experiments import get_experiment
from vlmloc.experiments.base import (
    Condition,
    ShardJob,
    run_conditions,
    share_count,
)
from vlmloc.experiments.mediation import mediate_pair
from vlmloc.experiments.necessary_flops import Flops
from vlmloc.experiments.reference import mediate_pair_reference, run_conditions_naive
from vlmloc.experiments.token_ablation import ablation, object_indices, random_indices_like
from vlmloc.interventions import mean_visual_embedding
from vlmloc.models import load_adapter
from vlmloc.models.real_configs import REAL_CONFIGS
from vlmloc.models.real_width import build_real_width, find_real_tokenizer
from vlmloc.models.tiny import BUILDERS
from vlmloc.plans import PLANS
from vlmloc.probes import ProbeSettings, fit_and_score, probe_images
from vlmloc.probes.reference import features_of_one_image, reference_fit_and_score
from vlmloc.runner import Runner
from vlmloc.tasks import task_prompt
from vlmloc.vision_cache import VisionCache

EXPERIMENTS = (
    "screening",
    "token_ablation",
    "containerization",
    "token_shuffle",
    "view_ablation",
    "attention_knockout",
    "mediation",
    "head_ablation",
    "probes",
)
GEOMETRY = {
    "llava": {"image_size": 336, "patch_size": 14},
    "internvl": {"image_size": 448, "patch_size": 14},
}
MAX_NEW = {"localization": 24, "list": 24, "binary": 4}
# wide scenes (the demo's shapes_wide): InternVL tiles them, 2 tiles + the thumbnail = 768 visual tokens
WIDE = {"long_side": (340, 480), "aspect": (0.55, 0.64)}
# each experiment's settings: what differs from the config schema's defaults (``vlmloc.defaults``),
# cut down to a few conditions; ``FIRST``: how many of its conditions run
OVERRIDES = {
    "containerization": {"paddings": [1, 2], "seeds": [0, 1]},
    "token_shuffle": {"modes": ["full", "object"], "seeds": [0, 1]},
    "view_ablation": {"views": ["global", "local"], "paddings": [0, 1], "multi_view_only": False},
    # Fig. 3's windows (half the layers each; ``Bench.settings``) and all layers, the object mask and
    # mask +1, one random control
    "attention_knockout": {
        "fig3_window": 2,
        "fig12_windows": [],
        "random_seeds": [0],
        "translated_control": False,
    },
    "mediation": {},
    "head_ablation": {
        "settings": ["localization", "random"],
        "random_seeds": [0],
        "proportions": [0.125, 0.25],
        "pool": "same",
    },
}
SETTINGS = {
    "screening": {
        "conditions": ["original", "removed"],
        "tasks": ["localization", "list", "binary"],
    },
    **{e: with_defaults(f"experiments.{e}", over) for e, over in OVERRIDES.items()},
}
FIRST = {"containerization": 4, "token_shuffle": 4, "view_ablation": 4}
PROBE_TOLERANCE = 0.01  # one flipped token in 100 (the features agree up to float noise)
SCORE_TOLERANCE = 1e-4  # nll (float32; the tests ask 1e-5 of the tiny models)


# ---- the machine, the model, the samples ---------------------------------------------------------


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(
    n: int, k: int, m: int, dtype: torch.dtype, device: str, seconds: float = 0.5
) -> float:
    """FLOP/s of (n x k) @ (k x m) products on this machine, now."""
    a, b = (
        torch.randn(n, k, dtype=dtype, device=device),
        torch.randn(k, m, dtype=dtype, device=device),
    )
    a @ b
    sync(device)
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        done += 1
        if done % 8 == 0:
            sync(device)
    sync(device)
    return 2 * n * k * m * done / (time.perf_counter() - t0)


def build_model(family: str, folder: Path, args) -> Path:
    heads = args.hidden // args.head_dim
    text = {
        "hidden_size": args.hidden,
        "intermediate_size": int(args.mlp * args.hidden),
        "num_hidden_layers": args.layers,
        "num_attention_heads": heads,
    }
    vision = {
        "hidden_size": args.vision_hidden,
        "intermediate_size": 2 * args.vision_hidden,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    }
    extra = {"max_tiles": args.max_tiles} if family == "internvl" else {}
    return BUILDERS[family](folder, seed=0, text=text, vision=vision, **GEOMETRY[family], **extra)


def peak_rss_gib() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def build_real(name: str, folder: Path, args) -> tuple[Path, str]:
    """Paper model ``name`` at its real width, ``--layers`` / ``--vision-layers`` deep, with the
    real tokenizer where ``make tokenizers`` wrote it (``--tokenizer-cache``)."""
    family = REAL_CONFIGS[name]["family"]
    tokenizer = (
        None if args.placeholder_tokenizer else find_real_tokenizer(family, args.tokenizer_cache)
    )
    options = {"max_tiles": args.max_tiles} if REAL_CONFIGS[name]["family"] == "internvl" else {}
    return build_real_width(
        name,
        folder,
        layers=args.layers,
        vision_layers=args.vision_layers,
        dtype=args.dtype,
        tokenizer=tokenizer,
        options=options,
    )


class BenchFlops(Flops):
    """``Flops`` with a dynamic-resolution tower (Qwen2.5-VL) counted on each image's own
    patches instead of the geometry's 640 x 480 image."""

    def vision(self, r) -> float:
        if not self.adapter.dynamic_resolution:
            return super().vision(r)
        merge = self.adapter.vision_merge
        patches = self.layout(r).n_tokens * merge * merge
        return dataclasses.replace(self.g, views=1, vision_seq=patches).vision()


def samples_on_disk(root: Path, n: int, spec: ShapesSpec, seed: int = 0) -> pd.DataFrame:
    """``n`` shapes scenes as probing-subset rows: the image, its first object (mask, box,
    category) and the exact object-removed image."""
    rng, rows = np.random.default_rng(seed), []
    for k in range(n):
        image, background, objects = render_scene(rng, spec)
        mask = objects[0]["mask"]
        removed = image.copy()
        removed[mask] = background[mask]
        path, removed_path = root / f"{k}.png", root / f"{k}_removed.png"
        Image.fromarray(image).save(path)
        Image.fromarray(removed).save(removed_path)
        ys, xs = np.nonzero(mask)
        rows.append(
            {
                "sample_id": f"b{k}",
                "image_id": k,
                "category": objects[0]["category"],
                "image_path": str(path),
                "removed_path": str(removed_path),
                "width": image.shape[1],
                "height": image.shape[0],
                "bbox_x": float(xs.min()),
                "bbox_y": float(ys.min()),
                "bbox_w": float(xs.max() + 1 - xs.min()),
                "bbox_h": float(ys.max() + 1 - ys.min()),
                "mask_rle": encode_mask(mask)["counts"],
            }
        )
    return pd.DataFrame(rows)


# ---- where the time goes ----------------------------------------------------------------------------


class Profile:
    """Seconds in the vision tower + projector (``get_image_features``), in LLM calls with more
    than one new token (prefill) and with one (decode); the rest of the wall time is "other".
    Forward hooks on the language model, a wrapper around the model's ``get_image_features``
    (a hook on the tower itself would turn the vision cache off)."""

    def __init__(self, adapter):
        self.adapter, self.device = adapter, adapter.device
        self.seconds = {"vision": 0.0, "prefill": 0.0, "decode": 0.0}
        self.tokens = {"prefill": 0, "decode": 0}
        self._start = None
        self._kind = None

    def _pre(self, _module, args, kwargs):
        x = kwargs.get("inputs_embeds")
        x = x if x is not None else kwargs.get("input_ids", args[0] if args else None)
        sync(self.device)
        self._kind = "decode" if x.shape[1] == 1 else "prefill"
        self.tokens[self._kind] += x.shape[0] * x.shape[1]
        self._start = time.perf_counter()

    def _post(self, _module, _args, _kwargs, _output):
        sync(self.device)
        self.seconds[self._kind] += time.perf_counter() - self._start

    @contextlib.contextmanager
    def active(self):
        inner = self.adapter.model.model
        stock = inner.get_image_features

        def timed(*args, **kwargs):
            sync(self.device)
            t0 = time.perf_counter()
            out = stock(*args, **kwargs)
            sync(self.device)
            self.seconds["vision"] += time.perf_counter() - t0
            return out

        lm = self.adapter.language_model
        handles = [
            lm.register_forward_pre_hook(self._pre, with_kwargs=True),
            lm.register_forward_hook(self._post, with_kwargs=True),
        ]
        inner.get_image_features = timed
        try:
            yield self
        finally:
            del inner.get_image_features
            for h in handles:
                h.remove()

    def shares(self, wall: float) -> dict[str, float]:
        out = {k: v / wall for k, v in self.seconds.items()}
        out["other"] = max(0.0, 1 - sum(out.values()))
        return out


def timed(device, fn, *args, **kw):
    sync(device)
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    sync(device)
    return out, time.perf_counter() - t0


# ---- the experiments -------------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    experiment: str
    family: str
    shape: str  # samples x conditions x tasks
    naive_s: float
    fast_s: float
    same: str
    flops: float
    rate: float
    shares: dict
    notes: list[str] = dataclasses.field(default_factory=list)
    agree: bool = True  # the fast path gave the reference's answers (scores within tolerance)

    @property
    def floor(self) -> float:
        return self.flops / (self.fast_s * self.rate)

    HEADER = (
        "| experiment | family | samples×conditions×tasks | naive s | fast s | ratio | same answers | "
        "necessary GFLOP | matmul GFLOP/s | floor fraction | vision / prefill / decode / other |"
    )

    def row(self) -> str:
        s = self.shares
        return (
            f"| {self.experiment} | {self.family} | {self.shape} | {self.naive_s:.1f} | {self.fast_s:.1f} | "
            f"×{self.naive_s / self.fast_s:.1f} | {self.same} | {self.flops / 1e9:,.0f} | {self.rate / 1e9:.1f} | "
            f"{self.floor:.2f} | {s['vision']:.2f} / {s['prefill']:.2f} / {s['decode']:.2f} / {s['other']:.2f} |"
        )


class Bench:
    def __init__(self, family: str, args, tmp: Path):
        self.family, self.args = family, args
        self.spec = ShapesSpec(**WIDE)
        self.pool = samples_on_disk(
            tmp, max(args.n, args.pairs), self.spec
        )  # mediation's pairs: its first --pairs
        self.samples = self.pool.head(args.n)
        self.tokenizer = "the builder's"
        if args.real_config:
            self.path, self.tokenizer = build_real(args.real_config, tmp / family, args)
        else:
            self.path = (
                Path(args.model_dir) if args.model_dir else build_model(family, tmp / family, args)
            )
        self.adapter = load_adapter(
            family, self.path, dtype=args.dtype, device=args.device, attn_implementation=args.attn
        )
        self.geometry = type(self.adapter).flops_geometry(self.path, self.adapter.options)
        self.flops = BenchFlops(self.adapter, self.geometry, self.spec.categories)
        self.mean = mean_visual_embedding(self.adapter, list(self.samples["image_path"][:4]))
        self.tmp = tmp
        a = self.adapter
        tokens = [lay.n_tokens for lay in self.job().layouts()]
        self.prefix_tokens = int(np.mean([self.flops.split(r, "x")[0] for r in self.job().records]))
        text = a.model.config.text_config
        self.dims = (self.prefix_tokens, text.hidden_size, text.intermediate_size)
        source = args.model_dir or (
            f"{args.real_config} at real width, random weights"
            if args.real_config
            else "tiny, random weights"
        )
        print(
            f"{family} ({source}): {np.mean(tokens):.0f} visual tokens per image on "
            f"average ({min(tokens)}-{max(tokens)}), LLM {text.hidden_size} wide x {a.num_layers} layers, {a.num_heads} heads ({a.num_kv_heads} kv) of "
            f"{a.head_dim}, MLP {self.dims[2]}; {self.geometry.linear / 1e6:.1f} M decoder weights; {args.n} samples; "
            f"{torch.get_num_threads()} threads, {args.device}, {args.dtype}; "
            f"vocabulary {text.vocab_size:,}, tokenizer: {self.tokenizer}; peak memory so far "
            f"{peak_rss_gib():.1f} GiB"
        )

    def job(self, settings: dict | None = None, **kw) -> ShardJob:
        a = self.adapter
        return ShardJob(
            a,
            Runner(a, batch_size=self.args.batch_size, progress=False),
            self.samples,
            self.spec.categories,
            dict(settings or {}),
            {t: min(n, self.args.max_new or n) for t, n in MAX_NEW.items()},
            self.mean,
            progress=False,
            **kw,
        )

    def rate(self) -> float:
        n, k, m = self.dims
        return matmul_rate(n, k, m, getattr(torch, self.args.dtype), self.args.device)

    def warm_up(self) -> None:
        job = self.job()
        job.samples = self.samples.head(1)
        run_conditions("warm-up", [Condition("warm-up", {}, tasks=("binary",))], job)
        run_conditions_naive("warm-up", [Condition("warm-up", {}, tasks=("binary",))], job)

    # the experiments on the experiment layer: run_conditions against run_conditions_naive
    def conditions(self, name: str, job: ShardJob) -> list[Condition]:
        if name == "token_ablation":  # Table 1's baseline, object, object +1 and 16% random (no IG)
            a, s = self.adapter, self.samples
            n_tokens = [lay.n_tokens for lay in job.layouts()]
            return [
                Condition("baseline", {"strategy": "baseline"}),
                ablation("object+0", {"strategy": "object"}, object_indices(a, s, 0), job),
                ablation("object+1", {"strategy": "object"}, object_indices(a, s, 1), job),
                ablation(
                    "random_k16",
                    {"strategy": "random"},
                    random_indices_like(a, s, [share_count(n, 16) for n in n_tokens], 0),
                    job,
                ),
            ]
        conds = list(get_experiment(name).conditions(job))
        return conds[: FIRST[name]] if name in FIRST else conds

    def generating(self, name: str) -> Result:
        job = self.job(self.settings(name), **self.upstream(name))
        conditions = self.conditions(name, job)
        naive, t_naive = timed(self.args.device, run_conditions_naive, name, conditions, job)
        job = dataclasses.replace(
            job, runner=Runner(self.adapter, batch_size=self.args.batch_size, progress=False)
        )
        fast, t_fast, profile, rate = self.fast(run_conditions, name, conditions, job)
        key = ["condition", "task", "sample_id"]
        naive, fast = (
            naive.sort_values(key).reset_index(drop=True),
            fast.sort_values(key).reset_index(drop=True),
        )
        same = (naive["answer"].to_numpy() == fast["answer"].to_numpy()).mean()
        same_text, agree = f"{same:.0%}", bool(same == 1)
        if "gold_nll" in fast:
            diff = np.abs(naive["gold_nll"] - fast["gold_nll"]).max()
            same_text, agree = (
                same_text + f", gold nll {diff:.0e}",
                agree and bool(diff <= SCORE_TOLERANCE),
            )
        tasks = sorted({len(c.tasks) for c in conditions})
        shape = f"{len(self.samples)}×{len(conditions)}×{'/'.join(map(str, tasks))}"
        flops = self.flops.generation(job, conditions, fast)
        notes = [
            f"conditions: {', '.join(c.name for c in conditions)}",
            f"answers cut off at max_new_tokens: {fast['truncated'].mean():.0%}",
            f"LLM tokens: prefill {profile.tokens['prefill']:,}, decode {profile.tokens['decode']:,}",
        ]
        return Result(
            name,
            self.family,
            shape,
            t_naive,
            t_fast,
            same_text,
            flops,
            rate,
            profile.shares(t_fast),
            notes,
            agree,
        )

    def fast(self, fn, *args):
        """``fn(*args)`` timed as the model job runs it (inside the vision cache, 2048 MiB as the
        config's default), with the profile and the matrix-multiply rate measured just before and
        just after."""
        before = self.rate()
        profile = Profile(self.adapter)
        cache = VisionCache.from_mb(2048)
        with cache.installed(self.adapter), profile.active():
            out, seconds = timed(self.args.device, fn, *args)
        return out, seconds, profile, (before + self.rate()) / 2

    def settings(self, name: str) -> dict:
        s = dict(SETTINGS.get(name, {}))
        if name == "attention_knockout":  # 3 windows: each half of the layers, and all of them
            s["fig3_window"] = max(1, self.adapter.num_layers // 2)
        return s

    def upstream(self, name: str) -> dict:
        """Head ablation reads a mediation ranking: a seeded random one (the order does not change the cost)."""
        if name != "head_ablation":
            return {}
        a, rng = self.adapter, np.random.default_rng(0)
        heads = pd.DataFrame(
            [
                {"task": t, "layer": layer, "head": h, "mf_mean": rng.normal()}
                for t in ("localization", "binary")
                for layer in range(a.num_layers)
                for h in range(a.num_heads)
            ]
        )
        path = self.tmp / "heads.parquet"
        heads.to_parquet(path)
        return {"upstream": {"mediation": str(path)}}

    def run(self, name: str) -> Result | None:
        if name in PLANS and PLANS[name].local_views and not self.adapter.has_local_views:
            print(f"  {name}: skipped ({self.family} has no local views)")
            return None
        if name == "mediation":
            return bench_mediation(self)
        if name == "probes":
            return bench_probes(self)
        return self.generating(name)


# ---- the two experiments measured outside the generation loop ------------------------------------


def mediation_heads(b: Bench) -> list[tuple[int, int]]:
    """The heads mediation patches: every head, or with ``--mediation-heads edges`` per layer
    the first and last query head of the first key-value group, the first of the second and
    the last head (where a grouped-query slice would go wrong, at a fraction of the cost)."""
    a = b.adapter
    if b.args.mediation_heads == "all":
        return [(layer, h) for layer in range(a.num_layers) for h in range(a.num_heads)]
    group = a.num_heads // a.num_kv_heads
    edges = sorted({0, group - 1, group, a.num_heads - 1})
    return [(layer, h) for layer in range(a.num_layers) for h in edges]


def bench_mediation(b: Bench) -> Result:
    a, s = b.adapter, SETTINGS["mediation"]
    records = b.pool.head(b.args.pairs).to_dict("records")
    runner = Runner(a, progress=False)
    pairs = []
    for r in records:
        golds = [
            a.gold_tokens(t, r, task_prompt(t, r["category"], b.spec.categories))
            for t in s["tasks"]
        ]
        items = [
            (task_prompt(t, r["category"], b.spec.categories), g)
            for t, g in zip(s["tasks"], golds, strict=True)
        ]
        pairs.append(
            (
                runner.pixels(r["image_path"]),
                runner.pixels(r["removed_path"]),
                a.layout(int(r["width"]), int(r["height"])),
                items,
            )
        )

    heads = mediation_heads(b)

    def naive():
        return [
            mediate_pair_reference(a, src, base, layout, items, s["positions"], heads)
            for src, base, layout, items in pairs
        ]

    def fast():
        return [
            mediate_pair(a, src, base, layout, items, s["positions"], s["heads_per_batch"], heads)
            for src, base, layout, items in pairs
        ]

    ref, t_naive = timed(b.args.device, naive)
    got, t_fast, profile, rate = b.fast(fast)
    diff = max(
        max(
            abs(f["base"] - r["base"]),
            abs(f["source"] - r["source"]),
            np.abs(f["patched"] - r["patched"]).max(),
        )
        for fp, rp in zip(got, ref, strict=True)
        for f, r in zip(fp, rp, strict=True)
    )
    n_heads = len(heads)
    flops = b.flops.mediation(records, s["tasks"], n_heads)
    shape = f"{len(records)}×{2 + n_heads}×{len(s['tasks'])}"
    notes = [
        f"pairs x (source, base and {n_heads} patched heads: {b.args.mediation_heads}) x tasks, teacher-forced; "
        f"heads per batch {s['heads_per_batch']}, positions {s['positions']}"
    ]
    return Result(
        "mediation",
        b.family,
        shape,
        t_naive,
        t_fast,
        f"nll max diff {diff:.0e}",
        flops,
        rate,
        profile.shares(t_fast),
        notes,
        bool(diff <= SCORE_TOLERANCE),
    )


def bench_probes(b: Bench) -> Result:
    a, n = b.adapter, b.args.n
    train, test = probe_images(
        "generated", "generated", n, max(1, n // 4), seed=0, shapes_spec=WIDE
    )
    method = b.args.probe_method
    settings = ProbeSettings(
        methods=(method,),
        random_control=False,
        shuffled_control=False,
        untrained_control=False,  # the reference fits the trained model only
        validation_fraction=0.0,
        batch_size=b.args.batch_size,
    )
    features_of_one_image(a, train[0], settings.task_text)  # warm-up of the reference's path
    ref, t_naive = timed(
        b.args.device,
        reference_fit_and_score,
        a,
        train,
        test,
        (method,),
        settings.task_text,
        settings.l2,
    )
    got, t_fast, profile, rate = b.fast(fit_and_score, a, train, test, settings)
    rows = {r["site"]: r for r in got.summary if r["variant"] == "true" and r["split"] == "test"}
    if set(rows) != {r["site"] for r in ref.summary}:
        raise RuntimeError(
            f"different sites: {sorted(rows)} vs {sorted(r['site'] for r in ref.summary)}"
        )
    diff = max(
        abs(rows[r["site"]][f"acc_{x}"] - r[f"acc_{x}"])
        for r in ref.summary
        for x in ("row", "col")
    )
    flops = b.flops.probes([*train, *test], settings.task_text)
    (timing,) = got.timing
    notes = [
        f"{len(train)} train + {len(test)} test images, {method}, {len(rows)} sites; "
        f"{'agree' if diff <= PROBE_TOLERANCE else 'DISAGREE'} within {PROBE_TOLERANCE}",
        f"fast: forwards {timing['forward_s'] + timing['test_forward_s']:.1f} s, statistics {timing['probe_s']:.1f} s; "
        f"reference: forwards {ref.seconds['features']:.1f} s, fits {ref.seconds['fit'] + ref.seconds['predict']:.1f} s",
        f"memory: the reference stored {ref.stored_bytes['train'] / 2**20:.1f} MiB of train features",
    ]
    shape = f"{len(train) + len(test)}×1×1"
    return Result(
        "probes",
        b.family,
        shape,
        t_naive,
        t_fast,
        f"accuracy max diff {diff:.3f}",
        flops,
        rate,
        profile.shares(t_fast),
        notes,
        bool(diff <= PROBE_TOLERANCE),
    )


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--experiment", required=True, choices=[*EXPERIMENTS, "all"])
    ap.add_argument("--family", default="llava", choices=sorted(BUILDERS))
    ap.add_argument(
        "--n",
        type=int,
        default=2,
        help="samples (probes: train images, and a quarter as many test images)",
    )
    ap.add_argument(
        "--pairs",
        type=int,
        default=1,
        help="mediation pairs (each: 2 + every head's runs per task)",
    )
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--hidden", type=int, default=1024, help="LLM width")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument(
        "--head-dim",
        type=int,
        default=128,
        help="dims per attention head (hidden / head-dim heads)",
    )
    ap.add_argument(
        "--mlp", type=float, default=2.75, help="MLP width / hidden (LLaVA-1.5-7B: 11008 / 4096)"
    )
    ap.add_argument("--vision-hidden", type=int, default=64)
    ap.add_argument(
        "--max-tiles",
        type=int,
        default=2,
        help="InternVL: tiles of a wide image (and the thumbnail)",
    )
    ap.add_argument(
        "--model-dir",
        help="a checkpoint folder of --family (e.g. checkpoints/toy_llava) instead of a tiny model",
    )
    ap.add_argument(
        "--real-config",
        choices=sorted(REAL_CONFIGS),
        help="a paper model at its real width (vlmloc.models.real_configs), --layers and "
        "--vision-layers deep, random weights; sets --family; --hidden, --head-dim, --mlp and "
        "--vision-hidden do not apply",
    )
    ap.add_argument("--vision-layers", type=int, default=2, help="with --real-config")
    ap.add_argument(
        "--tokenizer-cache",
        help="with --real-config: where make tokenizers wrote the real tokenizers (default "
        "resources/tokenizers); without them, the builder's BPE filled to the real length",
    )
    ap.add_argument(
        "--placeholder-tokenizer",
        action="store_true",
        help="with --real-config: the builder's BPE filled to the real length even where the "
        "real tokenizer is on disk",
    )
    ap.add_argument(
        "--mediation-heads",
        default="all",
        choices=["all", "edges"],
        help="heads mediation patches (edges: 4 per layer at the key-value group edges)",
    )
    ap.add_argument(
        "--max-new",
        type=int,
        default=None,
        help="cap every task's max_new_tokens (default 24/24/4)",
    )
    ap.add_argument(
        "--probe-method", default="lda", choices=["lda", "ridge"], help="the probes' closed form"
    )
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    ap.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )
    args = ap.parse_args()
    transformers.utils.logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = EXPERIMENTS if args.experiment == "all" else (args.experiment,)
    if args.real_config:
        args.family = REAL_CONFIGS[args.real_config]["family"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(args.family, args, Path(tmp))
        bench.warm_up()
        for name in names:
            t0 = time.perf_counter()
            result = bench.run(name)
            if result is None:
                continue
            results.append(result)
            result.notes.append(f"peak memory of the process so far: {peak_rss_gib():.1f} GiB")
            print(f"  {name} ({time.perf_counter() - t0:.0f} s): {result.row()}")
            for note in result.notes:
                print(f"    {note}")
    print()
    print(Result.HEADER)
    print("|---" * (Result.HEADER.count("|") - 1) + "|")
    for r in results:
        print(r.row())
    wrong = [r.experiment for r in results if not r.agree]
    if wrong:
        sys.exit(f"the fast path and the reference disagree: {', '.join(wrong)}")


if __name__ == "__main__":
    main()
