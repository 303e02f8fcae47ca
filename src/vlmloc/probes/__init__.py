"""Positional probes (paper sec. 3.2, app. 8): every visual token's hidden state at every stage,
streamed from the running model into linear row / column classifiers, never stored."""

from __future__ import annotations

from .features import STAGES, Site, StageBatch, TokenLabels, select_views, sites, stage_features
from .linear import (
           ProbeScores,
           SGDProbes,
           StreamingRidge,
           probe_targets,
           random_control,
           shuffled_positions,
)
from .run import METHODS, ProbeRun, ProbeSettings, fit_and_score, paper_scale_forwards

__all__ = ["METHODS", "STAGES", "ProbeRun", "ProbeScores", "ProbeSettings", "SGDProbes", "Site", "StageBatch",
           "StreamingRidge", "TokenLabels", "fit_and_score", "paper_scale_forwards", "probe_targets",
           "random_control", "select_views", "shuffled_positions", "sites", "stage_features"]  # fmt: skip
