"""What a model job of an experiment is given: the experiment's config entry with the model's own
settings over it (workflow/rules/common.smk passes it as the job's ``settings`` param, so a
change to it reruns exactly the jobs it concerns). Torch-free."""

from __future__ import annotations

from ..plans import PLANS


def experiment_settings(experiments: dict, name: str, model: str | None = None) -> dict:
    """``experiments[name]`` minus where it runs (datasets, shards) and the keys that change only
    its tables and figures (its plan's ``presentation``; not passed to the model jobs),
    with ``models.<model>`` over it: a nested setting (``integrated_gradients``) is merged key by
    key, so the model sets only what differs."""
    e = experiments[name]
    skip = {"datasets", "shards", "models", *PLANS[name].presentation}
    out = {k: v for k, v in e.items() if k not in skip}
    for key, value in e.get("models", {}).get(model, {}).items():
        out[key] = {**out[key], **value} if isinstance(value, dict) else value
    # head ablation leaves out the mediation pairs, or takes its mean outputs from them
    # (``ablation``: one value or a list)
    if name == "head_ablation":
        ablations = [out["ablation"]] if isinstance(out["ablation"], str) else out["ablation"]
        if out["pool"] == "disjoint" or "mean" in ablations:
            out["pairs"] = {k: experiments["mediation"][k] for k in ("n_pairs", "seed")}
        if "mean" not in ablations:
            out.pop("mean_samples")
    return out
