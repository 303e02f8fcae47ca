"""The paper's experiments on one layer (``base``): each module registers its experiments."""

from . import attention_knockout, containerization, screening, token_ablation, view_ablation  # noqa: F401  (each registers its experiments)
from .base import EXPERIMENTS, Condition, Experiment, ShardJob, get_experiment, register, run_shard

__all__ = ["EXPERIMENTS", "Condition", "Experiment", "ShardJob", "get_experiment", "register", "run_shard"]
