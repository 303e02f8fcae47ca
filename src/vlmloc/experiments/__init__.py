"""The paper's experiments on one layer (``base``): each module registers its experiments.

The package is imported lazily: the jobs that only read rows (tables, figures) import the
summaries, never torch or transformers (about 4 s saved per job). ``get_experiment`` and
``EXPERIMENTS`` import every experiment module first.
"""

import importlib

MODULES = (
    "screening",
    "token_ablation",
    "attention_knockout",
    "containerization",
    "view_ablation",
    "mediation",
    "head_ablation",
)
_FROM_BASE = (
    "EXPERIMENTS",
    "Condition",
    "Experiment",
    "ShardJob",
    "get_experiment",
    "register",
    "run_shard",
)
__all__ = list(_FROM_BASE)


def load_all() -> None:
    """Import every experiment module (each registers its experiments)."""
    for module in MODULES:
        importlib.import_module(f"{__name__}.{module}")


def __getattr__(name: str):
    if name in _FROM_BASE:
        load_all()
        return getattr(importlib.import_module(f"{__name__}.base"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
