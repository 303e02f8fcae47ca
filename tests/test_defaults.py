"""The config's defaults are written once, in its schema (``vlmloc.defaults`` reads them): the
workflow's validation and the library's partial settings get the same values, and src/ restates
none of them."""

import re
from pathlib import Path

import pytest
import yaml

from vlmloc.defaults import SCHEMA, defaults, with_defaults

ROOT = Path(__file__).resolve().parents[1]


def _scalar_defaults(node: dict, path=()) -> list[tuple[str, object]]:
    out = []
    if "default" in node and not isinstance(node["default"], (dict, list)) and path:
        out.append((path[-1], node["default"]))
    for name, sub in (node.get("properties") or {}).items():
        out += _scalar_defaults(sub, (*path, name))
    for sub in (node.get("definitions") or {}).values():
        out += _scalar_defaults(sub, path)
    for k in ("additionalProperties", "items"):
        if isinstance(node.get(k), dict):
            out += _scalar_defaults(node[k], path)
    return out


def test_defaults_are_the_schemas_as_validation_fills_them():
    from snakemake.utils import validate

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["bootstrap"] = {"seed": 3}
    config["models"]["m"] = {"family": "llava", "path": "x"}
    validate(config, str(SCHEMA))
    assert config["bootstrap"] == with_defaults("bootstrap", {"seed": 3})
    assert defaults("bootstrap")["resamples"] == 1000 and config["bootstrap"]["seed"] == 3
    # an optional object whose keys have defaults is not created (tiny marks a tiny model)
    assert "tiny" not in config["models"]["m"] and "tiny" not in defaults("models.*")
    assert {k: config["models"]["m"][k] for k in defaults("models.*")} == defaults("models.*")


def test_an_experiment_given_nothing_runs_as_validation_would_fill_it():
    """Each experiment's block, given empty, is completed by validation exactly as
    ``Experiment.settings`` completes it, nested blocks (IG, random, register) included: a test
    or a script that passes a partial entry runs what the workflow would."""
    from snakemake.utils import validate

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    names = list(config["experiments"])
    config["experiments"] = {name: {} for name in names}
    validate(config, str(SCHEMA))
    for name in names:
        assert config["experiments"][name] == with_defaults(f"experiments.{name}", {}), name
    assert config["experiments"]["token_ablation"]["register"]["n_std"] == 2.0


def test_with_defaults_completes_nested_keys_and_keeps_given_ones():
    s = with_defaults("probes", {"sgd": {"lr": 0.5}, "epochs": 3})
    assert s["sgd"]["lr"] == 0.5 and s["sgd"]["minibatch"] == defaults("probes")["sgd"]["minibatch"]
    assert s["epochs"] == 3 and s["controls"]["untrained"] is True
    assert with_defaults("#integrated_gradients", None)["steps"] == 32


def test_an_unknown_key_is_named():
    with pytest.raises(KeyError, match="experiments.nonsense"):
        defaults("experiments.nonsense.x")
    with pytest.raises(KeyError, match="no default"):
        defaults("models.*.family")


def test_src_restates_no_schema_default():
    """No ``.get("key", <the schema's default>)`` and no ``{"key": <default>, ...,
    **(given or {})}`` in src/: such a line silently disagrees once the schema changes (two did
    when this test was written: the knockout's random seeds and IG's steps)."""
    schema = yaml.safe_load(SCHEMA.read_text())
    pairs = {(k, repr(v)) for k, v in _scalar_defaults(schema) if v not in (None, "")}
    offenders = []
    for f in sorted((ROOT / "src" / "vlmloc").rglob("*.py")):
        if f.name in ("paper.py", "defaults.py"):
            continue
        for i, line in enumerate(f.read_text().splitlines(), 1):
            for key, lit in pairs:
                lit_py = lit if not lit.startswith("'") else f'"{lit[1:-1]}"'
                if re.search(rf'\.get\(\s*"{key}"\s*,\s*{re.escape(lit_py)}\s*\)', line) or (
                    "**(" in line and re.search(rf'"{key}":\s*{re.escape(lit_py)}\b', line)
                ):
                    offenders.append(f"{f.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not offenders, "\n".join(sorted(set(offenders)))
