"""Paper sec. 3.1.2 and appendix 7.5 (Table 3, Fig. 10): the object's tokens are replaced by the
mean visual embedding in the global view only (InternVL's thumbnail), in the local views only
(the tiles), or in both, with the mask padded by -1, 0, +1 token layers on each view's grid.

Only models with local views can run it (``skip_reason``). A sample whose image gets a single
view (a squarish image: one tile, no thumbnail) has no local view to ablate, so it is excluded
by default (``multi_view_only``): it is written as an ``excluded`` row with the reason, and the
table counts the samples that remain.
"""

from __future__ import annotations

from collections.abc import Iterator

from .base import Condition, Experiment, ShardJob, register
from .token_ablation import ablation, object_indices

VIEWS = {"global": ("global",), "local": ("local",), "both": None}


@register
class ViewAblation(Experiment):
    name = "view_ablation"
    param_columns = ("view", "padding")

    def skip_reason(self, adapter) -> str | None:
        if not adapter.has_local_views:
            return f"{adapter.family} model has no local views (every image is one view)"
        return None

    def exclude(self, job: ShardJob) -> dict[str, str]:
        if not self.settings(job)["multi_view_only"]:
            return {}
        return {
            r["sample_id"]: "single view (no local view to ablate)"
            for r, lay in zip(job.records, job.layouts(), strict=True)
            if not any(v.kind == "local" for v in lay.views)
        }

    def conditions(self, job: ShardJob) -> Iterator[Condition]:
        s = self.settings(job)
        yield Condition("baseline", {"view": "none", "padding": 0})
        for view in s["views"]:
            if view not in VIEWS:
                raise ValueError(f"view_ablation.views: {view!r} is not one of {sorted(VIEWS)}")
            for p in s["paddings"]:
                idx = object_indices(job.adapter, job.samples, int(p), VIEWS[view])
                yield ablation(f"{view}{p:+d}", {"view": view, "padding": int(p)}, idx, job)
