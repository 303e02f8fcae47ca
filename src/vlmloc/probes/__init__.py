"""Positional probes (paper sec. 3.2, app. 8): every visual token's hidden state at every stage,
streamed from the running model into linear row / column classifiers, never stored.

Imported lazily, like ``vlmloc.experiments``: the table and figure jobs read ``vlmloc.tables.probes``
(pandas only), never torch or transformers.
"""

import importlib

_FROM = {
    "features": (
        "STAGES",
        "Site",
        "StageBatch",
        "TokenLabels",
        "select_views",
        "sites",
        "stage_features",
    ),
    "linear": (
        "ProbeScores",
        "SGDProbes",
        "StreamingRidge",
        "probe_targets",
        "random_control",
        "shuffled_positions",
    ),
    "run": (
        "METHODS",
        "ProbeRun",
        "ProbeSettings",
        "fit_and_score",
        "untrained_adapter",
        "validation_split",
    ),
    "images": ("probe_images",),
}
_WHERE = {name: module for module, names in _FROM.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
