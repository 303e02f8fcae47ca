"""The config's defaults, read from its schema (``workflow/schemas/config.schema.yaml``), the one
place they are written.

The workflow validates its config against the schema, which fills every default before a job
starts. Library code that is also called outside the workflow (tests, scripts/, a notebook)
completes a partial settings dict here, so that no default is restated in code:

    s = with_defaults("experiments.mediation", job.settings)
    b = with_defaults("bootstrap", bootstrap)

A path names schema properties with dots; ``*`` steps into a mapping's values (``models.*``) and
``#name`` into ``definitions`` (``#integrated_gradients``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


@cache
def _schema() -> dict:
    import yaml

    if not SCHEMA.exists():
        raise FileNotFoundError(
            f"{SCHEMA}: the config schema, where every default is written; vlmloc reads it from "
            "its checkout (pip install -e .)"
        )
    return yaml.safe_load(SCHEMA.read_text())


def _resolve(node: dict) -> dict:
    """``node`` with a ``$ref`` to the definitions merged under its own keys."""
    ref = node.get("$ref")
    if not ref:
        return node
    target = _schema()["definitions"][ref.rsplit("/", 1)[-1]]
    return {**_resolve(target), **{k: v for k, v in node.items() if k != "$ref"}}


def _node(path: str) -> dict:
    node = _schema()
    for i, name in enumerate(path.split(".")):
        node = _resolve(node)
        if name.startswith("#"):
            node = _schema()["definitions"][name[1:]]
        elif name == "*":
            node = node.get("additionalProperties") or next(
                iter(node.get("patternProperties", {}).values())
            )
        else:
            props = node.get("properties", {})
            if name not in props:
                raise KeyError(
                    f"{'.'.join(path.split('.')[: i + 1])}: not a key of the config schema"
                )
            node = props[name]
    return _resolve(node)


def _filled(raw: dict, top: bool = False):
    """The default of one schema node, as the workflow's validation fills it: the ``default``
    written at the key itself (Snakemake's validation reads no default inside a ``$ref``'s
    target), an object's completed with its properties' defaults. A property without one is left
    out, even an object whose keys have defaults (``models.<m>.tiny`` exists only where it is
    given); the node asked for (``top``) gets its properties' defaults either way."""
    if not top and "default" not in raw:
        return _NONE
    node = _resolve(raw)
    props = {k: _filled(v) for k, v in node.get("properties", {}).items()}
    props = {k: v for k, v in props.items() if v is not _NONE}
    d = (node if top else raw).get("default", {})
    if isinstance(d, dict):
        return {**props, **d} if (props or d or "default" in node) else _NONE
    return d


_NONE = object()


def defaults(path: str):
    """The default of a config key (a value, or a dict of its keys' defaults)."""
    value = _filled(_node(path), top=True)
    if value is _NONE:
        raise KeyError(f"{path}: the config schema gives it no default")
    return value


def with_defaults(path: str, given: dict | None) -> dict:
    """``given`` completed with the schema's defaults of ``path`` (a dict key), given keys first,
    nested dicts completed key by key."""
    return _merged(defaults(path), given or {})


def _merged(base: dict, given: dict) -> dict:
    out = dict(base)
    for k, v in given.items():
        out[k] = _merged(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out
