"""Checks across config keys that the schema cannot express (a name defined elsewhere, one
setting against another). Each message names the offending key; the workflow raises them all
at once before any job (workflow/rules/common.smk). Torch-free, pure of the config."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .resources import too_big_for_one_gpu


def data_errors(config: dict) -> list[str]:
    errors = [
        f"run.datasets: {name!r} is not defined under datasets ({sorted(config['datasets'])})"
        for name in config["run"]["datasets"]
        if name not in config["datasets"]
    ]
    for name, d in config["datasets"].items():
        if d["kind"] == "shapes" and d["min_objects"] > d["max_objects"]:
            errors.append(f"datasets.{name}.min_objects > datasets.{name}.max_objects")
    f = config["filter"]
    if f["min_area_fraction"] >= f["max_area_fraction"]:
        errors.append("filter.min_area_fraction must be below filter.max_area_fraction")
    return errors


def model_errors(config: dict) -> list[str]:
    models, run = config["models"], config["run"]["models"]
    errors = [
        f"run.models: {m!r} is not defined under models ({sorted(models)})"
        for m in run
        if m not in models
    ]
    errors += [
        f"models.{m}.path: {models[m]['path']!r} does not exist"
        for m in run
        if m in models and "path" in models[m] and not os.path.isdir(models[m]["path"])
    ]
    errors += [
        f"models.{m}.params_b: needed for a hub model (it sizes the jobs' memory, GPUs and time)"
        for m in run
        if m in models and "hub_id" in models[m] and "params_b" not in models[m]
    ]
    for m in run:
        if m in models and ("params_b" in models[m] or "tiny" in models[m]):
            why = too_big_for_one_gpu(models[m], config["job_resources"])
            if why:
                errors.append(f"models.{m}: {why}")
    return errors


def experiment_errors(config: dict) -> list[str]:
    errors = []
    experiments, datasets = config.get("experiments", {}), config["datasets"]
    for name, e in experiments.items():
        for d in e.get("datasets", []):
            if d not in datasets:
                errors.append(f"experiments.{name}.datasets: {d!r} is not defined under datasets")
        # an unknown name here would silently run the experiment's defaults
        for m in e.get("models", {}):
            if m not in config["models"]:
                errors.append(f"experiments.{name}.models: {m!r} is not defined under models")
    ha, med = experiments.get("head_ablation"), experiments.get("mediation", {})
    if ha:  # its rankings come from the mediation's tasks
        needs = {"localization": "localization", "classification": "binary"}
        wanted = [needs[s] for s in ha["settings"] if s in needs]
        wanted += [ha["lowest_task"]] if "lowest" in ha["settings"] else []
        for task in dict.fromkeys(wanted):
            if task not in med.get("tasks", []):
                errors.append(
                    f"experiments.head_ablation.settings: ranks heads by the {task!r} MF, "
                    f"which experiments.mediation.tasks leaves out"
                )
        for d in ha.get("datasets", []):
            if d not in med.get("datasets", []):
                errors.append(
                    f"experiments.head_ablation.datasets: {d!r} is not a mediation dataset (its heads are ranked there)"
                )
    me = config["mean_embedding"]
    if me["images"] == "generated":
        like = me["generated_like"]
        if datasets.get(like, {}).get("kind") != "shapes":
            errors.append(f"mean_embedding.generated_like: {like!r} is not a shapes dataset")
    return errors


def local_llm_layers(model: dict) -> int | None:
    """The LLM's layer count of a local checkpoint (config.json), None otherwise (a hub model's
    is known once downloaded: its figure job checks then)."""
    cfg = Path(model.get("path", "")) / "config.json"
    if "path" not in model or not cfg.exists():
        return None
    return json.loads(cfg.read_text()).get("text_config", {}).get("num_hidden_layers")


def probe_errors(config: dict) -> list[str]:
    probes, models = config["probes"], config["models"]
    errors = []
    if probes["figure_method"] not in probes["methods"]:
        errors.append(
            f"probes.figure_method: {probes['figure_method']!r} is not one of probes.methods {probes['methods']}"
        )
    untrained_methods = probes["controls"].get("untrained_methods") or []
    errors += [
        f"probes.controls.untrained_methods: {m!r} is not one of probes.methods {probes['methods']}"
        for m in untrained_methods
        if m not in probes["methods"]
    ]
    generated = [probes[k] == "generated" for k in ("train_images", "test_images")]
    if any(generated) and not all(generated):
        errors.append(
            "probes.train_images and probes.test_images: both `generated` or both folders"
        )
    if (
        all(generated)
        and config["datasets"].get(probes["generated_like"], {}).get("kind") != "shapes"
    ):
        errors.append(
            f"probes.generated_like: {probes['generated_like']!r} is not a shapes dataset"
        )
    errors += [
        f"probes.fig11_layers: {m!r} is not defined under models"
        for m in probes["fig11_layers"]
        if m not in models
    ]
    for m, layers in probes["fig11_layers"].items():
        n = local_llm_layers(models[m]) if m in models else None
        if n is not None and max(layers) >= n:
            errors.append(f"probes.fig11_layers.{m}: layer {max(layers)} outside 0..{n - 1}")
    return errors


def mechanism_errors(config: dict) -> list[str]:
    """The known-mechanism comparison reads containerization and Table 2 on its dataset and the
    probes, for both of its toys: each must be run."""
    m = config.get("mechanisms")
    if not m:
        return []
    errors = []
    run, experiments = config["run"], config.get("experiments", {})
    for role in ("content", "container"):
        if m[role] not in run["models"]:
            errors.append(f"mechanisms.{role}: {m[role]!r} is not in run.models")
    if m["content"] == m["container"]:
        errors.append("mechanisms.container: the same model as mechanisms.content")
    if m["dataset"] not in run["datasets"]:
        errors.append(f"mechanisms.dataset: {m['dataset']!r} is not in run.datasets")
    for name in ("containerization", "token_shuffle"):
        if m["dataset"] not in experiments.get(name, {}).get("datasets", []):
            errors.append(
                f"mechanisms.dataset: {m['dataset']!r} is not in experiments.{name}.datasets"
            )
    if not config["probes"]["enabled"]:
        errors.append("mechanisms: needs probes.enabled")
    elif m["probe_method"] not in config["probes"]["methods"]:
        errors.append(f"mechanisms.probe_method: {m['probe_method']!r} is not in probes.methods")
    paddings = experiments.get("containerization", {}).get("paddings", [])
    scales = experiments.get("containerization", {}).get("scales", [])
    for p in paddings:
        if p not in scales or 0 not in scales:
            errors.append(
                f"mechanisms: experiments.containerization.scales must hold 0 and every padding ({p})"
            )
    return errors


def config_errors(config: dict) -> list[str]:
    """Every cross-key error of a schema-valid config (defaults filled in)."""
    return (
        data_errors(config)
        + model_errors(config)
        + experiment_errors(config)
        + probe_errors(config)
        + mechanism_errors(config)
    )


def check_config(config: dict) -> None:
    errors = config_errors(config)
    if errors:
        raise ValueError("invalid config:\n  " + "\n  ".join(errors))
