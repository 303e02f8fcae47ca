# Shared helpers: config validation, cross-key checks, path and setting lookups per dataset,
# model and experiment. The model jobs' resources: resources.smk; the default target: targets.smk.
import json
import math
import os
import re
import sys
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import validate

sys.path.insert(
    0, str(Path(workflow.main_snakefile).parent / "src")
)  # vlmloc's torch-free parts, before any install
from vlmloc import workload
from vlmloc.workflow import resources as model_resources
from vlmloc.workflow import settings as job_settings
from vlmloc.defaults import with_defaults
from vlmloc.plans import PLANS
from vlmloc.workflow.checks import check_config
from vlmloc.sources import scoring_sources

# Fails before any job, naming the offending key; also fills in schema defaults.
validate(config, workflow.source_path("../schemas/config.schema.yaml"))


check_config(config)  # cross-key checks (vlmloc.workflow.checks), each naming its key

DATASETS = config["datasets"]
DOWNLOADS = config["downloads"]["files"]


def datasets_of_kind(kind):
    return [n for n, d in DATASETS.items() if d["kind"] == kind]


def alternation(names):
    """Wildcard regex matching exactly these names (never matches when empty)."""
    return "|".join(re.escape(n) for n in names) or "(?!x)x"


wildcard_constraints:
    dataset=alternation(DATASETS),
    shapes_name=alternation(datasets_of_kind("shapes")),
    file=alternation(DOWNLOADS),
    shard=r"\d+",


def ds(wildcards):
    return DATASETS[wildcards.dataset]


def annotations_of(wildcards):
    """The dataset's COCO-format annotation file (compressed RLE), whatever its source."""
    d = ds(wildcards)
    if d["kind"] == "shapes":
        return f"resources/shapes/{wildcards.dataset}/annotations.json"
    if d["kind"] == "coco":
        return f"resources/coco/instances_val2017.{d['label_correction']}.json"
    return f"resources/voc/annotations.{d['split']}.json"


def image_dir_of(wildcards):
    d = ds(wildcards)
    if d["kind"] == "shapes":
        return f"resources/shapes/{wildcards.dataset}/images"
    if d["kind"] == "coco":
        return "resources/coco/images"
    return "resources/voc/raw"


def image_root_of(wildcards):
    """Folder holding the image files named in the annotations (inside image_dir_of)."""
    d = ds(wildcards)
    if d["kind"] == "coco":
        return "resources/coco/images/val2017"
    if d["kind"] == "voc":
        return "resources/voc/raw/VOCdevkit/VOC2012/JPEGImages"
    return image_dir_of(wildcards)


def filter_params():
    f = config["filter"]
    keys = ("min_area_fraction", "max_area_fraction", "min_side", "unique_category")
    return {k: f[k] for k in keys}


def removal_params(wildcards):
    d, ip = ds(wildcards), config["inpainting"]
    p = {"backend": d["inpainting"], "shards": ip["shards"]}
    if d["inpainting"] != "exact":
        p["dilate_px"] = ip["dilate_px"]
    if d["inpainting"] == "opencv":
        p["radius"] = ip["opencv_radius"]
    if d["inpainting"] == "lama":
        p["lama_weights"] = ip["lama_weights"]
        p["lama_md5"] = ip.get("lama_md5")
    return p


def lama_weights(wildcards):
    """The LaMa weights as an input of the removal jobs (rule download fetches them when they are
    a downloads.files entry; elsewhere a missing file stops the run before any job)."""
    return (
        config["inpainting"]["lama_weights"]
        if ds(wildcards)["inpainting"] == "lama"
        else []
    )


def exact_removed_dir(wildcards):
    d = ds(wildcards)
    if d["inpainting"] != "exact":
        return []
    if d["kind"] != "shapes":
        raise ValueError(
            f"datasets.{wildcards.dataset}.inpainting: 'exact' is only for synthetic shapes"
        )
    return f"resources/shapes/{wildcards.dataset}/removed"


MODELS = config["models"]


wildcard_constraints:
    model=alternation(MODELS),
    toy=alternation(config.get("toy_training", {})),


def model_dir(name):
    """Where a model's weights, tokenizer and preprocessor config are read from."""
    m = MODELS[name]
    return m["path"] if "path" in m else f"resources/models/{name}"


# What from_pretrained reads from a local checkpoint (weights, configs, tokenizer, adapter
# options); not the toy's training records (eval.json, training_*), which change no answer.
MODEL_FILE_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".safetensors.index.json",
    ".bin.index.json",
)
MODEL_FILE_NAMES = (
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "chat_template.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vlmloc_adapter.json",
)


def is_model_file(name):
    return (
        name.endswith(MODEL_FILE_SUFFIXES)
        or name in MODEL_FILE_NAMES
        or name.startswith("tokenizer")
    )


def model_input(wildcards):
    """A downloaded model's folder (made by a rule); a local checkpoint's files, so that
    replacing its weights or configs reruns what was computed with them."""
    m = MODELS[wildcards.model]
    if "path" not in m:
        return model_dir(wildcards.model)
    return sorted(str(f) for f in Path(m["path"]).iterdir() if is_model_file(f.name))


# what a model's token layout is read from (Adapter.geometry_only): no weights, no tokenizer
MODEL_GEOMETRY_FILES = (
    "config.json",
    "preprocessor_config.json",
    "vlmloc_adapter.json",
)


def model_geometry_input(wildcards):
    """A downloaded model's folder; a local checkpoint's config files, so that the token-grid
    figures redraw when its geometry changes and not when only its weights do."""
    m = MODELS[wildcards.model]
    if "path" not in m:
        return model_dir(wildcards.model)
    return [
        str(Path(m["path"]) / f)
        for f in MODEL_GEOMETRY_FILES
        if (Path(m["path"]) / f).exists()
    ]


def model_source(wildcards):
    m = MODELS[wildcards.model]
    if "tiny" in m:
        return {"tiny": m["tiny"]["seed"], "family": m["family"]}
    return {"hub_id": m["hub_id"], "revision": m["revision"], "family": m["family"]}


def adapter_class(name):
    """The adapter class of a model's family, asked what the workflow decides per family (local
    views, the FLOP count's dimensions) with no model loaded; importing it imports no torch.
    """
    from vlmloc.models import ADAPTERS

    return ADAPTERS[MODELS[name]["family"]]


def model_settings(name):
    """Everything about a model that changes its answers (rerun triggers via params)."""
    m = MODELS[name]
    keys = (
        "family",
        "dtype",
        "attn_implementation",
        "max_tiles",
        "system_prompt",
        "box_leading_zero",
    )
    out = {k: m[k] for k in keys if k in m}
    out["path"] = model_dir(name)
    return out


def screening_settings():
    s = config["screening"]
    return {
        "max_new_tokens": dict(sorted(s["max_new_tokens"].items())),
        "shards": s["shards"],
    }


EXPERIMENTS = config.get("experiments", {})
# what each experiment needs, from its plan (vlmloc.plans): the model's mean visual embedding,
# local views (tiles; whether a model makes them, its adapter class says)
USES_MEAN_EMBEDDING = {e for e, p in PLANS.items() if p.mean_embedding}
NEEDS_LOCAL_VIEWS = {e for e, p in PLANS.items() if p.local_views}
# the code that parses and scores answers: the scoring rule reruns when it changes (a parser fix
# rescores every experiment and reruns no model job). Read from vlmloc.scoring's imports
# (vlmloc.sources, with ast: nothing imported), so it cannot drift from the code.
PARSER_CODE = scoring_sources(Path(workflow.main_snakefile).parent)


wildcard_constraints:
    experiment=alternation(EXPERIMENTS),


def parser_code():
    return [f for f in PARSER_CODE if os.path.exists(f)]


def experiment_settings(name, model=None):
    """The experiment's config entry as its model jobs get it (vlmloc.workflow.settings)."""
    return job_settings.experiment_settings(EXPERIMENTS, name, model)


def upstream_input(wildcards):
    """Another experiment's gathered output that this one reads (its plan's ``upstream``): head
    ablation ranks heads by the same model's mediation on the same dataset."""
    upstream = PLANS[wildcards.experiment].upstream
    if upstream == "mediation":
        return {
            "upstream_mediation": f"results/{wildcards.dataset}/experiments/mediation/{wildcards.model}/heads.parquet"
        }
    return {}


def knockout_windows(figure):
    """Per run model, the window size(s) of Fig 3 or Fig 12."""
    key = {"fig3": "fig3_window", "fig12": "fig12_windows"}[figure]
    return {
        m: experiment_settings("attention_knockout", m)[key]
        for m in config["run"]["models"]
    }


def experiment_datasets(name):
    return [
        d
        for d in EXPERIMENTS.get(name, {}).get("datasets", [])
        if d in config["run"]["datasets"]
    ]


def mean_embedding_input(wildcards):
    if wildcards.experiment in USES_MEAN_EMBEDDING:
        return f"results/mean_embedding/{wildcards.model}.pt"
    return []


def shapes_spec(name):
    d = DATASETS[name]
    keys = ("colours", "shapes", "long_side", "aspect", "min_objects", "max_objects")
    return {k: d[k] for k in keys if k in d}


def models_without_local_views():
    """Run models without local views (tiles), with the reason."""
    return {
        m: f"{MODELS[m]['family']} model without local views (max_tiles 1 or a single-view family)"
        for m in config["run"]["models"]
        if not adapter_class(m).makes_local_views(MODELS[m])
    }


def skipped_models(experiment):
    """Run models that cannot run `experiment`, with the reason (e.g. no local views)."""
    if experiment not in NEEDS_LOCAL_VIEWS:
        return {}
    return models_without_local_views()


def experiment_models(experiment):
    """The run models that run `experiment` (the others are skipped with a logged reason)."""
    skipped = skipped_models(experiment)
    return [m for m in config["run"]["models"] if m not in skipped]


def paper_names(models):
    return {m: MODELS[m].get("paper_name", "") for m in models}


def experiment_rows(experiment):
    """Every model's scored rows of one experiment (an input function)."""
    return lambda w: expand(
        "results/{{dataset}}/experiments/{experiment}/{model}/rows.parquet",
        experiment=experiment,
        model=experiment_models(experiment),
    )


PROBES = config["probes"]
# probe settings that only change tables and figures (not passed to the model job)
PROBE_PRESENTATION_KEYS = {"enabled", "accuracy", "figure_method", "fig11_layers"}


def probe_settings():
    """What the probe job's rows depend on (the image source, counts, methods, and the settings
    of the methods that run), so that nothing else reruns a job of hours."""
    out = {k: v for k, v in PROBES.items() if k not in PROBE_PRESENTATION_KEYS}
    if "sgd" not in PROBES["methods"]:
        out.pop("epochs"), out.pop("sgd")
    if not {"ridge", "lda"} & set(PROBES["methods"]):
        out.pop("l2"), out.pop("ridge_dtype")
    if PROBES["train_images"] != "generated":
        out.pop("generated_like")
    # the settings of an untrained control that does not run
    if not PROBES["controls"].get("untrained", True):
        out["controls"] = {
            k: v
            for k, v in out["controls"].items()
            if k not in ("untrained_seed", "untrained_methods")
        }
    out["bootstrap"] = config["bootstrap"]  # the per-layer intervals over test images
    return out


def probe_shapes_spec():
    if PROBES["train_images"] != "generated":
        return {}
    return shapes_spec(PROBES["generated_like"])


def probe_skipped():
    """Run models the probes leave out, with the reason: probing the tiles alone (`views: local`)
    needs local views."""
    return models_without_local_views() if PROBES["views"] == "local" else {}


def probe_models():
    if not PROBES["enabled"]:
        return []
    return [m for m in config["run"]["models"] if m not in probe_skipped()]


def probe_rows(kind):
    """Every probed model's rows of one kind (summary, cells, timing)."""
    return expand(
        "results/probes/{model}/{kind}.parquet", model=probe_models(), kind=kind
    )


def probe_presentation(*keys):
    """The params of a probes' table or figure rule: the models, the position accuracy and `keys`
    (only those its script reads, so that e.g. Fig 11's layers redraw Fig 11 alone)."""
    models = probe_models()
    every = {
        "paper_names": paper_names(models),
        "methods": PROBES["methods"],
        "figure_method": PROBES["figure_method"],
        "fig11_layers": {
            m: PROBES["fig11_layers"][m] for m in models if m in PROBES["fig11_layers"]
        },
    }
    return {"models": models, "accuracy": PROBES["accuracy"]} | {
        k: every[k] for k in keys
    }


for _name in sorted(NEEDS_LOCAL_VIEWS & set(EXPERIMENTS)):
    for _m, _why in skipped_models(_name).items():
        logger.info(f"{_name}: {_m} skipped ({_why})")
for _m, _why in probe_skipped().items():
    logger.info(f"probes (views: local): {_m} skipped ({_why})")


# ---- known mechanisms (config/mechanisms.yaml; rules in mechanisms.smk) ----------------------------

MECHANISMS = config.get("mechanisms") or {}


def mechanism_tables():
    d = MECHANISMS["dataset"]
    return {
        "cells": f"results/{d}/tables/containerization_cells.tsv",
        "shuffle": f"results/{d}/tables/table2_token_shuffle.tsv",
        "best": "results/probes/tables/probe_best_layer.tsv",
        "shuffle_content": f"results/{d}/experiments/token_shuffle/{MECHANISMS['content']}/rows.parquet",
        "shuffle_container": f"results/{d}/experiments/token_shuffle/{MECHANISMS['container']}/rows.parquet",
    }


def mechanism_params():
    """Everything the verdicts depend on: the two toys, the rules' thresholds, the paddings."""
    keys = (
        "content",
        "container",
        "probe_method",
        "probe_tolerance",
        "shuffle_ratio",
        "shuffle_min_loss",
    )
    out = {k: MECHANISMS[k] for k in keys}
    out["paddings"] = EXPERIMENTS["containerization"]["paddings"]
    return out
