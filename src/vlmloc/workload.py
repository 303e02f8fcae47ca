"""The necessary FLOPs of each model job, and the time they take at a given rate: the paper's
GPU-hours and the wall time the Slurm profile asks for (``job_resources.runtime_from: flops``).

Necessary work, as the speed yardstick counts it (``flops.forward_flops``): each image's vision
tower once per job (the vision cache), each shared prefix once per condition that must rerun it
(once per batch for conditions that leave it alone), each question's tokens and each decoded
token once, attention's quadratic term over what is really attended (causal), and for
integrated gradients ``steps`` passes of the whole sequence forward and backward (3 forwards).
The counts follow the experiments' condition lists (their modules) and the config; the token
lengths of prompts and answers are the typical lengths below (``TEXT``), not tokenized.

Torch-free: the workflow's resource functions call it while planning the DAG.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .defaults import defaults, with_defaults
from .plans import PLANS

# Published dimensions (the papers' and hub configs', as in ``models.real_configs``; the
# meta-device models of tests/paper_flops.py's ``meta_model`` have them, as
# tests/test_workload.py checks). LLM: linear weights of the decoder blocks, layers,
# query heads x head dim, hidden, vocabulary, heads; vision: linear weights of the tower and
# projector, layers, width, tokens per view in the tower, visual tokens per view at the LLM.
PAPER_GEOMETRY = {
    "llava-1.5-7b": {
        "linear": 6_476_005_376,
        "layers": 32,
        "attention_width": 4096,
        "hidden": 4096,
        "vocab": 32064,
        "heads": 32,
        "vision_linear": 322_961_408,
        "vision_layers": 24,
        "vision_width": 1024,
        "vision_seq": 577,
        "tokens_per_view": 576,
        "views": 1,
    },
    "llava-1.5-13b": {
        "linear": 12_687_769_600,
        "layers": 40,
        "attention_width": 5120,
        "hidden": 5120,
        "vocab": 32064,
        "heads": 40,
        "vision_linear": 333_447_168,
        "vision_layers": 24,
        "vision_width": 1024,
        "vision_seq": 577,
        "tokens_per_view": 576,
        "views": 1,
    },
    # 7 views: COCO's 4:3 images take the 3 x 2 grid of 6 tiles (max_tiles 6) and the thumbnail
    "internvl-3.5-8b": {
        "linear": 6_945_767_424,
        "layers": 36,
        "attention_width": 4096,
        "hidden": 4096,
        "vocab": 151936,
        "heads": 32,
        "vision_linear": 335_544_320,
        "vision_layers": 24,
        "vision_width": 1024,
        "vision_seq": 1025,
        "tokens_per_view": 256,
        "views": 7,
    },
}

# Typical token counts of the text around the image (chat template, question) and of the
# replies, per task: the localization reply is a box (4 numbers of up to 3 digits, a token per
# digit), the list prompt names every COCO category (about 80 x 2.5 tokens).
TEXT = {
    "template": 40,
    "question": {"localization": 30, "list": 230, "binary": 15},
    "answer": {"localization": 26, "list": 15, "binary": 2},
}


def decoder_flops(
    linear: int,
    layers: int,
    attention_width: int,
    hidden: int,
    vocab: int,
    tokens: float,
    past: float = 0.0,
    logits: int = 1,
    causal: bool = True,
) -> float:
    """FLOPs of one row's decoder pass over ``tokens`` new tokens after ``past`` cached ones,
    keeping ``logits`` positions' logits: 2 x the linear weights per token; attention's scores
    and weighted values, 2 x width FLOPs each per (query, key) pair per layer, a causal pass
    seeing past + (tokens + 1) / 2 keys per query on average (``causal=False``: every key, as a
    dense kernel computes); the kept logits. The one formula: ``flops.forward_flops`` calls it."""
    keys = past + ((tokens + 1) / 2 if causal else tokens)
    return (
        2 * linear * tokens
        + 4 * attention_width * layers * tokens * keys
        + 2 * hidden * vocab * logits
    )


def decoder_linear(t: dict) -> tuple[int, int]:
    """(linear weights of the decoder blocks, query heads x head dim) from a checkpoint's text
    config (a dict of config.json): attention's four projections (grouped-query keys and values)
    and a gated MLP per layer."""
    head_dim = t.get("head_dim") or t["hidden_size"] // t["num_attention_heads"]
    kv = t.get("num_key_value_heads") or t["num_attention_heads"]
    attn = t["num_attention_heads"] * head_dim
    linear = t["num_hidden_layers"] * (
        t["hidden_size"] * (2 * attn + 2 * kv * head_dim)
        + 3 * t["hidden_size"] * t["intermediate_size"]
    )
    return linear, attn


@dataclass(frozen=True)
class Geometry:
    linear: int
    layers: int
    attention_width: int
    hidden: int
    vocab: int
    heads: int
    vision_linear: int
    vision_layers: int
    vision_width: int
    vision_seq: int
    tokens_per_view: int
    views: int

    @classmethod
    def of_paper(cls, paper_name: str) -> Geometry:
        return cls(**PAPER_GEOMETRY[paper_name])

    @classmethod
    def of_checkpoint(cls, folder: str | Path, views: int = 1) -> Geometry:
        """From a local checkpoint's config.json (the toys, tiny models): no weights are read."""
        cfg = json.loads((Path(folder) / "config.json").read_text())
        t, v = cfg["text_config"], cfg["vision_config"]
        linear, attn = decoder_linear(t)
        size = v["image_size"][0] if isinstance(v["image_size"], list) else v["image_size"]
        patch = v["patch_size"][0] if isinstance(v["patch_size"], list) else v["patch_size"]
        patches = (size // patch) ** 2
        merge = round(1 / cfg.get("downsample_ratio", 1.0)) ** 2
        vw = v["hidden_size"]
        vision_linear = v["num_hidden_layers"] * (4 * vw * vw + 2 * vw * v["intermediate_size"])
        vision_linear += (
            vw * merge * t["hidden_size"] + t["hidden_size"] ** 2
        )  # the 2-layer projector
        return cls(
            linear,
            t["num_hidden_layers"],
            attn,
            t["hidden_size"],
            t["vocab_size"],
            t["num_attention_heads"],
            vision_linear,
            v["num_hidden_layers"],
            vw,
            patches + 1,
            patches // merge,
            views,
        )

    @property
    def visual_tokens(self) -> int:
        return self.tokens_per_view * self.views

    @property
    def prefix(self) -> int:
        return self.visual_tokens + TEXT["template"] // 2

    def decoder(self, tokens: float, past: float = 0.0, logits: int = 1) -> float:
        """One row's decoder pass over ``tokens`` after ``past`` (``decoder_flops``)."""
        return decoder_flops(
            self.linear,
            self.layers,
            self.attention_width,
            self.hidden,
            self.vocab,
            tokens,
            past,
            logits,
        )

    def vision(self) -> float:
        """The tower (non-causal attention) and projector over every view of one image."""
        seq = self.vision_seq
        per_view = (
            2 * self.vision_linear * seq + 4 * self.vision_width * self.vision_layers * seq * seq
        )
        return per_view * self.views

    def suffix(self, task: str) -> float:
        """One question after a cached prefix, then its reply decoded token by token."""
        q, a = TEXT["question"][task] + TEXT["template"] // 2, TEXT["answer"][task]
        decode = sum(self.decoder(1, self.prefix + q + i) for i in range(a))
        return self.decoder(q, self.prefix) + decode

    def scored(self, task: str) -> float:
        """One question and its gold reply teacher-forced after a cached prefix (every logit kept)."""
        n = TEXT["question"][task] + TEXT["template"] // 2 + TEXT["answer"][task]
        return self.decoder(n, self.prefix, logits=TEXT["answer"][task] + 1)

    def generation(self, tasks, prefix_runs: int = 1, conditions: int = 1) -> float:
        """``conditions`` conditions of ``tasks`` over one image whose prefix runs ``prefix_runs`` times."""
        return prefix_runs * self.decoder(self.prefix) + conditions * sum(
            self.suffix(t) for t in tasks
        )

    def integrated_gradients(self, task: str, steps: int) -> float:
        n = self.prefix + TEXT["question"][task] + TEXT["template"] // 2 + TEXT["answer"][task]
        return 3 * steps * self.decoder(n, logits=TEXT["answer"][task] + 1)


def experiment_flops(g: Geometry, experiment: str, s: dict, n_samples: int) -> float:
    """Necessary FLOPs of ``experiment`` with settings ``s`` over ``n_samples`` samples (mediation:
    its ``n_pairs``; head ablation: the pool it is scored on): its plan's work per sample
    (``vlmloc.plans``) on the geometry ``g``."""
    if experiment not in PLANS:
        raise ValueError(f"no FLOP count for experiment {experiment!r}")
    plan = PLANS[experiment]
    s = with_defaults(f"experiments.{experiment}", s)
    w = plan.work(s, g.layers, g.heads)
    per = (
        w.vision * g.vision()
        + w.prefix_runs * g.decoder(g.prefix)
        + sum(n * g.suffix(t) for t, n in w.generated.items())
        + sum(n * g.scored(t) for t, n in w.scored.items())
        + sum(g.integrated_gradients(t, steps) for t, steps in w.ig_steps.items())
    )
    return (s["n_pairs"] if plan.per_pair else n_samples) * per


def screening_flops(g: Geometry, n_annotations: int) -> float:
    """Each annotation's original and object-removed image, three questions each."""
    return 2 * n_annotations * (g.vision() + g.generation(("localization", "list", "binary")))


def mean_embedding_flops(g: Geometry, n_images: int) -> float:
    return n_images * g.vision()


def probe_flops(g: Geometry, n_train: int, n_test: int, passes: int) -> float:
    """The image prefix (and the task text) per image and pass: SGD's epochs over the train images,
    one pass for the closed forms, validation and test images once per pass set."""
    per = g.vision() + g.decoder(g.prefix + TEXT["question"]["localization"])
    return per * (n_train * passes + n_test)


def hours(flops: float, tflops: float, fraction: float = 1.0) -> float:
    """Wall hours of ``flops`` at ``fraction`` of a ``tflops`` rate."""
    return flops / (tflops * 1e12 * fraction) / 3600


PAPER_SUBSET = {
    "coco": 2248,
    "voc": 1500,
}  # the paper's COCO probing subset (sec. 2.2); VOC's: an estimate
PAPER_ANNOTATIONS = 6403  # COCO annotations after the filters (sec. 2.2)
EXPERIMENTS = tuple(PLANS)  # the paper's experiments, in the order of its GPU-hours table


def overlay(base: dict, over: dict) -> dict:
    """``over`` on ``base`` key by key, as Snakemake merges a --configfile into the config."""
    out = dict(base)
    for k, v in over.items():
        out[k] = overlay(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def paper_flops(config: dict) -> dict[str, dict[str, float]]:
    """Per paper model and stage, the necessary FLOPs of the paper scope (``config``: config.yaml
    with config/paper.yaml over it), screening, the mean embedding and the probes included."""
    out = {}
    exps = config["experiments"]
    for model in config["run"]["models"]:
        g = Geometry.of_paper(config["models"][model]["paper_name"])
        row = {
            "screening": screening_flops(g, PAPER_ANNOTATIONS),
            "mean_embedding": mean_embedding_flops(
                g, config["mean_embedding"]["n_images"] or 50000
            ),
        }
        for e in EXPERIMENTS:
            if PLANS[e].local_views and g.views == 1:
                continue  # LLaVA has no local views
            s = {**exps[e], **exps[e].get("models", {}).get(model, {})}
            kind = config["datasets"][s["datasets"][0]]["kind"]
            # head ablation is scored on the pool without the mediation pairs it ranks by
            upstream = PLANS[e].upstream
            n = PAPER_SUBSET[kind] - (exps[upstream]["n_pairs"] if upstream == "mediation" else 0)
            row[e] = experiment_flops(g, e, s, n)
        p = config["probes"]
        passes = (p["epochs"] if "sgd" in p["methods"] else 0) + 2
        row["probes"] = probe_flops(g, p["n_train"], p["n_test"], passes)
        out[model] = row
    return out


def main() -> None:
    """Print the paper scope's GPU-hours per model and stage: at the GPU's peak and at a fraction."""
    import argparse

    import yaml

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--overlay", default="config/paper.yaml")
    ap.add_argument(
        "--tflops",
        type=float,
        default=defaults("job_resources")["gpu_tflops"],
        help="the GPU's dense bf16 peak (job_resources.gpu_tflops; H100 / H200 SXM: 989)",
    )
    ap.add_argument(
        "--fraction",
        type=float,
        default=defaults("job_resources")["floor_fraction"],
        help="fraction of the peak reached (job_resources.floor_fraction)",
    )
    args = ap.parse_args()

    cfg = overlay(yaml.safe_load(open(args.config)), yaml.safe_load(open(args.overlay)))
    table = paper_flops(cfg)
    stages = list(dict.fromkeys(k for row in table.values() for k in row))
    print(f"GPU-hours at {args.tflops:g} TFLOP/s (peak) / at {args.fraction:g} of it")
    print("| stage | " + " | ".join(table) + " |")
    print("|---" * (len(table) + 1) + "|")
    for stage in [*stages, "total"]:
        cells = []
        for row in table.values():
            f = sum(row.values()) if stage == "total" else row.get(stage)
            cells.append(
                "—"
                if f is None
                else f"{hours(f, args.tflops):.2f} / {hours(f, args.tflops, args.fraction):.1f}"
            )
        print(f"| {stage} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
