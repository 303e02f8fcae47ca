# Shared helpers: config validation, cross-key checks, path lookups per dataset kind.
import os
import re
from pathlib import Path

from snakemake.utils import validate

# Fails before any job, naming the offending key; also fills in schema defaults.
validate(config, workflow.source_path("../schemas/config.schema.yaml"))


def _check_config():
    errors = []
    for name in config["run"]["datasets"]:
        if name not in config["datasets"]:
            errors.append(
                f"run.datasets: {name!r} is not defined under datasets ({sorted(config['datasets'])})"
            )
    for name, d in config["datasets"].items():
        if d["kind"] == "shapes" and d["min_objects"] > d["max_objects"]:
            errors.append(f"datasets.{name}.min_objects > datasets.{name}.max_objects")
    f = config["filter"]
    if f["min_area_fraction"] >= f["max_area_fraction"]:
        errors.append("filter.min_area_fraction must be below filter.max_area_fraction")
    if errors:
        raise ValueError("invalid config:\n  " + "\n  ".join(errors))


_check_config()

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
    return p


def exact_removed_dir(wildcards):
    d = ds(wildcards)
    if d["inpainting"] != "exact":
        return []
    if d["kind"] != "shapes":
        raise ValueError(
            f"datasets.{wildcards.dataset}.inpainting: 'exact' is only for synthetic shapes"
        )
    return f"resources/shapes/{wildcards.dataset}/removed"


def data_targets(dataset):
    return [
        f"results/{dataset}/samples.parquet",
        f"results/{dataset}/tables/filter_counts.tsv",
        f"results/{dataset}/removed.parquet",
        f"results/{dataset}/figures/object_removal_examples.png",
        f"results/{dataset}/figures/object_removal_examples.pdf",
    ]


# ---- models -------------------------------------------------------------------------------------
MODELS = config["models"]


def _check_models():
    errors = [
        f"run.models: {m!r} is not defined under models ({sorted(MODELS)})"
        for m in config["run"]["models"]
        if m not in MODELS
    ]
    errors += [
        f"models.{m}.path: {MODELS[m]['path']!r} does not exist"
        for m in config["run"]["models"]
        if m in MODELS and "path" in MODELS[m] and not os.path.isdir(MODELS[m]["path"])
    ]
    if errors:
        raise ValueError("invalid config:\n  " + "\n  ".join(errors))


_check_models()


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


def model_source(wildcards):
    m = MODELS[wildcards.model]
    if "tiny" in m:
        return {"tiny": m["tiny"]["seed"], "family": m["family"]}
    return {"hub_id": m["hub_id"], "revision": m["revision"], "family": m["family"]}


def model_settings(name):
    """Everything about a model that changes its answers (rerun triggers via params)."""
    m = MODELS[name]
    keys = ("family", "dtype", "attn_implementation", "max_tiles", "system_prompt")
    out = {k: m[k] for k in keys if k in m}
    out["path"] = model_dir(name)
    return out


def model_resources(name):
    """GPUs a model job asks for: the model's `gpus` (0 for the CPU-sized toys and tiny models,
    so that their jobs run side by side instead of queueing for the workstation's GPU).
    """
    m = MODELS[name]
    return 0 if "tiny" in m else m["gpus"]


def screening_settings():
    s = config["screening"]
    return {
        "max_new_tokens": dict(sorted(s["max_new_tokens"].items())),
        "shards": s["shards"],
    }


def screening_targets(dataset):
    return [
        f"results/{dataset}/probing_subset.parquet",
        f"results/{dataset}/tables/screening_counts.tsv",
        f"results/{dataset}/tables/baseline_accuracy.tsv",
        f"results/{dataset}/tables/false_positive_rates.tsv",
        f"results/{dataset}/figures/baseline_accuracy.png",
        f"results/{dataset}/figures/baseline_accuracy.pdf",
        f"results/{dataset}/figures/localization_examples.png",
        f"results/{dataset}/figures/localization_examples.pdf",
    ]


# ---- experiments --------------------------------------------------------------------------------
EXPERIMENTS = config.get("experiments", {})
# experiments whose ablations replace tokens with the model's mean visual embedding
USES_MEAN_EMBEDDING = {"token_ablation", "token_ablation_matched"}
# the code that parses and scores answers: the scoring rule reruns when it changes (a parser fix
# rescores every experiment and reruns no model job)
PARSER_CODE = [
    "src/vlmloc/tasks.py",
    "src/vlmloc/experiments/screening.py",
    "src/vlmloc/models/base.py",
    "src/vlmloc/models/llava.py",
    "src/vlmloc/models/internvl.py",
]


def _check_experiments():
    errors = []
    for name, e in EXPERIMENTS.items():
        for d in e.get("datasets", []):
            if d not in DATASETS:
                errors.append(
                    f"experiments.{name}.datasets: {d!r} is not defined under datasets"
                )
    me = config["mean_embedding"]
    if me["images"] == "generated":
        like = me["generated_like"]
        if DATASETS.get(like, {}).get("kind") != "shapes":
            errors.append(
                f"mean_embedding.generated_like: {like!r} is not a shapes dataset"
            )
    if errors:
        raise ValueError("invalid config:\n  " + "\n  ".join(errors))


_check_experiments()


wildcard_constraints:
    experiment=alternation(EXPERIMENTS),


def parser_code():
    return [f for f in PARSER_CODE if os.path.exists(f)]


def experiment_settings(name, model=None):
    """The experiment's config entry, minus where it runs (datasets, shards), with the model's
    own settings (`models.<model>`) over it."""
    e = EXPERIMENTS[name]
    out = {k: v for k, v in e.items() if k not in ("datasets", "shards", "models")}
    out.update(e.get("models", {}).get(model, {}))
    return out


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


def experiment_rows(experiment):
    """Every run model's scored rows of one experiment (an input function)."""
    return lambda w: expand(
        "results/{{dataset}}/experiments/{experiment}/{model}/rows.parquet",
        experiment=experiment,
        model=config["run"]["models"],
    )


def experiment_targets(dataset):
    targets = []
    if dataset in experiment_datasets("token_ablation"):
        targets += [
            f"results/{dataset}/tables/table1_token_ablation.tsv",
            f"results/{dataset}/tables/table4_random_ablation.tsv",
            f"results/{dataset}/figures/token_ablation.png",
            f"results/{dataset}/figures/token_ablation.pdf",
        ]
    if dataset in experiment_datasets("token_ablation_matched"):
        targets += [f"results/{dataset}/tables/table5_token_ablation_matched.tsv"]
    if dataset in experiment_datasets("attention_knockout"):
        targets += [
            f"results/{dataset}/tables/knockout_summary.tsv",
            f"results/{dataset}/figures/knockout_fig3.png",
            f"results/{dataset}/figures/knockout_fig3.pdf",
            f"results/{dataset}/figures/knockout_fig12.png",
            f"results/{dataset}/figures/knockout_fig12.pdf",
        ]
    return targets


def all_targets():
    targets = []
    for name in config["run"]["datasets"]:
        targets += data_targets(name)
        if config["run"]["models"]:
            targets += screening_targets(name)
            targets += experiment_targets(name)
    return targets
