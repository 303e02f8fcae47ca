"""Each experiment's plan (vlmloc.plans) is declared once, for every experiment there is: the
schema's experiments, the registered experiment classes and the plans are the same set, and what
the workflow reads from a plan is what its experiment does."""

from types import SimpleNamespace

from vlmloc.defaults import _node
from vlmloc.plans import PLANS


def test_every_experiment_has_one_plan():
    from vlmloc.experiments import EXPERIMENTS

    assert set(PLANS) == set(_node("experiments")["properties"]) == set(EXPERIMENTS) - {"screening"}


def test_a_plans_needs_are_its_experiments():
    """Local views: exactly the experiments that skip a single-view model. Presentation keys:
    keys of the experiment's own schema block."""
    from vlmloc.experiments import get_experiment

    single_view = SimpleNamespace(has_local_views=False, family="llava")
    for name, plan in PLANS.items():
        skips = get_experiment(name).skip_reason(single_view) is not None
        assert plan.local_views == skips, name
        assert plan.presentation <= set(_node(f"experiments.{name}")["properties"]), name
    assert {n: p.upstream for n, p in PLANS.items() if p.upstream} == {"head_ablation": "mediation"}
