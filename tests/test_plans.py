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


# each experiment at its smallest, on one wide sample (the tiny InternVL tiles it)
SMALLEST = {
    "token_ablation": {
        "paddings": [0],
        "random": {"k": [4], "seeds": [0]},
        "integrated_gradients": {"k": [4], "steps": 2},
    },
    "token_ablation_matched": {"integrated_gradients": {"steps": 2}, "random": {"seeds": [0]}},
    "containerization": {"paddings": [1], "seeds": [0], "tasks": ["localization"]},
    "token_shuffle": {"seeds": [0]},
    "view_ablation": {"paddings": [0]},
    "attention_knockout": {"fig12_windows": [2], "random_seeds": [0], "translated_seeds": [0]},
    "mediation": {"n_pairs": 1, "tasks": ["localization"]},
    "head_ablation": {  # pairs: from the mediation block, as the workflow's settings merge adds it
        "settings": ["localization"],
        "proportions": [0.25],
        "random_seeds": [0],
        "pool": "same",
        "pairs": {"n_pairs": 1, "seed": 0},
    },
}


def test_the_mean_embedding_is_read_by_exactly_the_plans_that_declare_it(adapters, tmp_path):
    """The workflow gives a model job the mean visual embedding only where the plan says
    ``mean_embedding`` (common.smk): an experiment that reads it without declaring it would run
    on None, one that declares it without reading it costs a needless job. Every experiment runs
    here on a job that records which of its fields it reads."""
    from dataclasses import dataclass, field

    from test_experiment_layer import _job, _samples

    from vlmloc.experiments import get_experiment, run_shard
    from vlmloc.experiments.head_ranking import head_scores

    @dataclass
    class Watched(type(_job(adapters["internvl"], _samples(tmp_path)[:0], {}, 0))):
        read: set = field(default_factory=set)

        def __getattribute__(self, name):
            if name in ("mean", "embedding_stats"):
                object.__getattribute__(self, "read").add(name)
            return object.__getattribute__(self, name)

    a = adapters["internvl"]
    samples = _samples(tmp_path, sizes=((420, 140),))
    samples["removed_path"] = samples["image_path"]
    base = _job(a, samples, {})
    assert len(a.layout(420, 140).views) > 1
    reads = {}
    for name, plan in PLANS.items():
        job = Watched(**{**vars(base), "settings": SMALLEST.get(name, {})})
        job.pool = samples
        if name == "head_ablation":
            job.upstream = {"mediation": str(tmp_path / "heads.parquet")}
        rows = run_shard(get_experiment(name), job)
        assert len(rows) and not (rows["condition"] == "excluded").any(), name
        if name == "mediation":
            head_scores(rows, 0.0, {"resamples": 10, "level": 0.95, "seed": 0}).to_parquet(
                tmp_path / "heads.parquet"
            )
        reads[name] = bool(job.read)  # the mean or its norms' statistics
        assert reads[name] == plan.mean_embedding, (name, job.read)
    assert sum(reads.values()) == 3  # the two token ablations and the view ablation
