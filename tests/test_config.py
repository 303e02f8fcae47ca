import copy

import pytest
import yaml
from conftest import ROOT, run_snakemake
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")


def default_config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_default_and_paper_configs_validate():
    cfg = default_config()
    validate(cfg, SCHEMA)
    assert cfg["datasets"]["shapes"]["inpainting"] == "exact"
    paper = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    from snakemake.utils import update_config

    merged = copy.deepcopy(cfg)
    update_config(merged, paper)  # what --configfile does: key by key, recursively
    validate(merged, SCHEMA)
    assert merged["experiments"]["token_ablation"]["integrated_gradients"]["steps"] == 50


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda c: c["filter"].update(min_sid=100), "min_sid"),
        (lambda c: c.update(filtr={}), "filtr"),
        (lambda c: c["datasets"]["shapes"].update(n_imgs=3), "n_imgs"),
        (lambda c: c["datasets"]["coco"].update(label_corection="none"), "label_corection"),
        (lambda c: c["downloads"]["files"]["val2017.zip"].update(sha=1), "sha"),
        (lambda c: c["experiments"]["token_ablation"].update(padings=[0]), "padings"),
        (
            lambda c: c["experiments"]["token_ablation"]["integrated_gradients"].update(stepz=3),
            "stepz",
        ),
        (lambda c: c["experiments"].update(token_ablations={}), "token_ablations"),
        (lambda c: c["mean_embedding"].update(imgs="x"), "imgs"),
        (lambda c: c["probes"].update(epoch=3), "epoch"),
        (lambda c: c["probes"]["sgd"].update(learning_rate=0.1), "learning_rate"),
    ],
)
def test_misspelt_key_is_named(edit, key):
    cfg = default_config()
    edit(cfg)
    with pytest.raises(WorkflowError, match=key):
        validate(cfg, SCHEMA)


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda c: c["filter"].update(min_side="big"), "min_side"),
        (lambda c: c["filter"].update(max_area_fraction=1.5), "max_area_fraction"),
        (lambda c: c["inpainting"].update(shards=0), "shards"),
        (lambda c: c["datasets"]["shapes"].update(inpainting="photoshop"), "inpainting"),
        (lambda c: c["downloads"]["files"]["val2017.zip"].update(md5="abc"), "md5"),
        (
            lambda c: c["experiments"]["token_ablation"]["integrated_gradients"].update(
                target="loss"
            ),
            "target",
        ),
        (lambda c: c["experiments"]["token_ablation"]["register"].update(scope="pixel"), "scope"),
        (lambda c: c["experiments"]["token_ablation"]["random"].update(k=[0]), "k"),
        (lambda c: c["probes"].update(methods=["svm"]), "svm"),
        (lambda c: c["probes"].update(accuracy="acc_row"), "acc_row"),
    ],
)
def test_wrong_type_or_range_is_named(edit, fragment):
    cfg = default_config()
    edit(cfg)
    with pytest.raises(WorkflowError, match=fragment):
        validate(cfg, SCHEMA)


def test_bad_config_stops_snakemake_before_any_job(workflow_dir):
    (workflow_dir / "bad.yaml").write_text("filter:\n  min_sid: 150\n")
    proc = run_snakemake(workflow_dir, "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert "min_sid" in proc.stdout + proc.stderr
    assert not (workflow_dir / "results").exists() and not (workflow_dir / "resources").exists()


def test_undefined_run_dataset_is_named(workflow_dir):
    (workflow_dir / "bad.yaml").write_text("run:\n  datasets: [shapez]\n")
    proc = run_snakemake(workflow_dir, "-n", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0 and "shapez" in proc.stdout + proc.stderr


def test_missing_model_path_is_named(workflow_dir):
    (workflow_dir / "bad.yaml").write_text(
        "models:\n  lost:\n    family: llava\n    path: checkpoints/nowhere\n"
        "run:\n  datasets: [shapes]\n  models: [lost]\n"
    )
    proc = run_snakemake(workflow_dir, "-n", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0 and "models.lost.path" in proc.stdout + proc.stderr


def test_probe_figure_method_outside_the_methods_is_named(workflow_dir):
    (workflow_dir / "bad.yaml").write_text("probes:\n  methods: [lda]\n  figure_method: sgd\n")
    proc = run_snakemake(workflow_dir, "-n", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0 and "probes.figure_method" in proc.stdout + proc.stderr


def test_probing_tiles_alone_skips_models_without_tiles(workflow_dir):
    (workflow_dir / "local.yaml").write_text("probes:\n  views: local\n")
    out = run_snakemake(workflow_dir, "-n", "--configfile", "local.yaml")
    text = out.stdout + out.stderr
    assert "probes (views: local): toy_llava skipped" in text
    assert (
        "results/probes/toy_internvl/summary.parquet" in text
        and "results/probes/toy_llava/" not in text
    )


def test_fig11_layer_beyond_a_local_checkpoint_is_named(workflow_dir):
    """The toys have 4 LLM layers: layer 4 fails before any job, naming the key."""
    (workflow_dir / "bad.yaml").write_text("probes:\n  fig11_layers: {toy_llava: [1, 4]}\n")
    proc = run_snakemake(workflow_dir, "-n", "--configfile", "bad.yaml", check=False)
    assert (
        proc.returncode != 0
        and "probes.fig11_layers.toy_llava: layer 4 outside 0..3" in proc.stdout + proc.stderr
    )
    (workflow_dir / "good.yaml").write_text("probes:\n  fig11_layers: {toy_llava: [1, 3]}\n")
    run_snakemake(workflow_dir, "-n", "--configfile", "good.yaml")


def test_head_ablation_outside_the_mediation_datasets_is_named(workflow_dir):
    """Head ablation ranks heads by the mediation of the same dataset."""
    (workflow_dir / "bad.yaml").write_text(
        "experiments:\n  head_ablation:\n    datasets: [shapes_voc]\n"
    )
    proc = run_snakemake(workflow_dir, "-n", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert (
        "experiments.head_ablation.datasets: 'shapes_voc' is not a mediation dataset"
        in proc.stdout + proc.stderr
    )


def test_head_ablation_needs_the_gathered_mediation_ranking(workflow_dir):
    """In the DAG a head-ablation job reads its model's ranking (rank_heads over the gathered
    mediation rows); the demo target holds every head table and figure."""
    dry = run_snakemake(workflow_dir, "-n", "--quiet", "rules").stdout
    for rule in (
        "rank_heads",
        "table_mediation",
        "figure_mediation",
        "table_head_ablation",
        "figure_head_ablation",
    ):
        assert rule in dry, rule
    text = run_snakemake(
        workflow_dir, "-n", "results/shapes/experiments/head_ablation/toy_llava/raw/shard-0.parquet"
    ).stdout
    assert "results/shapes/experiments/mediation/toy_llava/heads.parquet" in text
    assert "output: results/shapes/experiments/mediation/toy_llava/raw/shard-0.parquet" in text


@pytest.mark.parametrize(
    "overlay, message",
    [
        (
            "experiments:\n  attention_knockout:\n    models: {toy_lava: {fig3_window: 1}}\n",
            "experiments.attention_knockout.models: 'toy_lava' is not defined under models",
        ),
        (
            "experiments:\n  token_shuffle:\n    datasets: [shapez]\n",
            "experiments.token_shuffle.datasets: 'shapez' is not defined under datasets",
        ),
        (
            "probes:\n  fig11_layers: {toy_lava: [1]}\n",
            "probes.fig11_layers: 'toy_lava' is not defined under models",
        ),
        (
            "mean_embedding:\n  generated_like: shapez\n",
            "mean_embedding.generated_like: 'shapez' is not a shapes dataset",
        ),
        (
            "probes:\n  generated_like: coco\n",
            "probes.generated_like: 'coco' is not a shapes dataset",
        ),
    ],
    ids=[
        "knockout_models",
        "experiment_datasets",
        "fig11_layers",
        "mean_embedding_like",
        "probes_like",
    ],
)
def test_undefined_name_in_a_block_keyed_by_names_is_named(workflow_dir, overlay, message):
    """A typo in a model, dataset or rule name fails before any job instead of running the default."""
    (workflow_dir / "bad.yaml").write_text(overlay)
    proc = run_snakemake(workflow_dir, "-n", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr, (
        proc.stdout + proc.stderr
    )[-2000:]


def test_head_ablation_ranking_by_a_task_mediation_leaves_out_is_named(workflow_dir):
    (workflow_dir / "bad.yaml").write_text(
        "experiments:\n  mediation:\n    tasks: [localization]\n"
    )
    proc = run_snakemake(workflow_dir, "-n", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert (
        "experiments.head_ablation.settings: ranks heads by the 'binary' MF"
        in proc.stdout + proc.stderr
    )


def test_untrained_control_methods_outside_the_methods_are_named(workflow_dir):
    (workflow_dir / "bad.yaml").write_text(
        "probes:\n  methods: [sgd]\n  figure_method: sgd\n  controls: {untrained_methods: [lda]}\n"
    )
    proc = run_snakemake(workflow_dir, "-n", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert (
        "probes.controls.untrained_methods: 'lda' is not one of probes.methods ['sgd']"
        in proc.stdout + proc.stderr
    )


@pytest.mark.parametrize("env", ["data", "models", "inpainting"])
def test_conda_envs_pin_what_constraints_pins(env):
    """A package pinned in envs/<env>.yaml has the version of constraints.txt (where that pins it),
    and the data and model envs pin every package they name: the envs cannot drift from the
    versions the tests ran with."""
    pins = dict(
        line.split("==") for line in (ROOT / "constraints.txt").read_text().split() if "==" in line
    )
    spec = yaml.safe_load((ROOT / "envs" / f"{env}.yaml").read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    named = [p.split("#")[0].strip() for p in pip if not p.startswith("-e")]
    for p in named:
        name, _, version = p.partition("==")
        if name in pins and version:
            assert version == pins[name], (env, p, pins[name])
    if env != "inpainting":  # LaMa's env keeps the older stack simple-lama-inpainting pins
        assert named and all("==" in p for p in named), named


def _schema_keys(node) -> set[str]:
    """Every property name anywhere in a JSON schema."""
    names: set[str] = set()
    if isinstance(node, dict):
        for key, value in (node.get("properties") or {}).items():
            names |= {key} | _schema_keys(value)
        for key in ("patternProperties", "definitions", "$defs"):
            for value in (node.get(key) or {}).values():
                names |= _schema_keys(value)
        for key in ("additionalProperties", "items", "then", "else"):
            if isinstance(node.get(key), dict):
                names |= _schema_keys(node[key])
        for key in ("oneOf", "anyOf", "allOf"):
            for value in node.get(key) or []:
                names |= _schema_keys(value)
    return names


def test_every_schema_key_is_documented():
    """docs/configuration.md names every key of the schema (in a table's backticks or a heading):
    a key added to the schema without a line there fails here, so the page cannot drift."""
    import re

    doc = (ROOT / "docs/configuration.md").read_text()
    words = set()
    for text in re.findall(r"`([^`]+)`", doc) + re.findall(r"^#+ (.*)$", doc, re.M):
        words |= {w for w in re.split(r"[^A-Za-z0-9_]+", text) if w}
    keys = _schema_keys(yaml.safe_load(open(SCHEMA).read()))
    assert len(keys) > 100
    assert keys <= words, sorted(keys - words)
