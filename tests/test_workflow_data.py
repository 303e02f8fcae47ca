"""The data stages through Snakemake, as a user runs them (in a temp copy of the workflow)."""

import hashlib
import io
import json
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, run_snakemake, uncompressed_rle
from PIL import Image

pytestmark = pytest.mark.slow

SMALL = (ROOT / ".test/plumbing.yaml").read_text()  # also a config users can run


def planned_jobs(proc) -> dict[str, int]:
    """Parse Snakemake's 'Job stats' table of a dry run."""
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:")[1].split("Reasons")[0]
    return {
        m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"
    }


def test_demo_data_stages_end_to_end(workflow_dir):
    (workflow_dir / "small.yaml").write_text(SMALL)
    run_snakemake(workflow_dir, "--configfile", "small.yaml")
    samples = pd.read_parquet(workflow_dir / "results/shapes/samples.parquet")
    removed = pd.read_parquet(workflow_dir / "results/shapes/removed.parquet")
    assert len(samples) > 0 and list(removed["sample_id"]) == list(samples["sample_id"])
    counts = pd.read_csv(workflow_dir / "results/shapes/tables/filter_counts.tsv", sep="\t")
    assert counts["annotations"].iloc[-1] == len(samples)
    assert (
        workflow_dir / "results/shapes/figures/object_removal_examples.png"
    ).stat().st_size > 10_000
    assert (workflow_dir / "logs/filter_samples/shapes.log").exists()
    # screening ran for both tiny models; random weights identify nothing -> an empty, valid subset
    for model in ("tiny_llava", "tiny_internvl"):
        answers = pd.read_parquet(
            workflow_dir / f"results/shapes/screening/{model}/answers.parquet"
        )
        assert len(answers) == len(samples) * 2 * 3 and answers["answer"].notna().all()
    counts = pd.read_csv(workflow_dir / "results/shapes/tables/screening_counts.tsv", sep="\t")
    assert counts["annotations"].iloc[0] == len(samples)
    assert (
        "probing subset is EMPTY" in (workflow_dir / "logs/probing_subset/shapes.log").read_text()
    )
    acc = pd.read_csv(workflow_dir / "results/shapes/tables/baseline_accuracy.tsv", sep="\t")
    assert set(acc["model"]) == {"tiny_llava", "tiny_internvl"}

    # a second run has nothing to do
    assert planned_jobs(run_snakemake(workflow_dir, "-n", "--configfile", "small.yaml")) == {}

    # a filter threshold reruns filtering and what depends on it, nothing upstream
    (workflow_dir / "thresh.yaml").write_text(SMALL + "filter:\n  min_side: 150\n")
    jobs = planned_jobs(run_snakemake(workflow_dir, "-n", "--configfile", "thresh.yaml"))
    assert jobs == {
        "filter_samples": 1,
        "remove_objects_shard": 2,
        "gather_removed": 1,
        "figure_object_removal_examples": 1,
        "screen_shard": 4,
        "gather_screening": 2,
        "hallucination_filter": 2,
        "probing_subset": 1,
        "figure_baseline_accuracy": 1,
        "figure_localization_examples": 1,
        "run_experiment": 14,
        "score_experiment": 10,
        "table_token_ablation": 1,
        "figure_token_ablation": 1,
        "table_attention_knockout": 1,
        "figure_knockout": 1,
        "table_containerization": 1,
        "figure_containerization": 1,
        "table_token_shuffle": 1,
        "rank_heads": 2,
        "table_mediation": 1,
        "figure_mediation": 1,
        "table_head_ablation": 1,
        "figure_head_ablation": 1,
        "all": 1,
    }

    # a parser fix rescores screening and every experiment, and reruns no model job (the probing
    # subset is a checkpoint whose ids file did not change)
    tasks_py = workflow_dir / "src/vlmloc/tasks.py"
    tasks_py.write_text(tasks_py.read_text() + "\n# a parser fix\n")
    jobs = planned_jobs(run_snakemake(workflow_dir, "-n", "--configfile", "small.yaml"))
    assert (
        jobs["score_experiment"] == 10
        and jobs["gather_screening"] == 2
        and jobs["table_token_ablation"] == 1
    )
    assert not {"screen_shard", "mean_embedding_shard", "gather_mean_embedding"} & set(jobs), jobs
    out = run_snakemake(workflow_dir, "--configfile", "small.yaml")
    ran = set(re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", out.stdout + out.stderr, re.M))
    assert {
        "gather_screening",
        "probing_subset",
        "score_experiment",
        "table_token_ablation",
    } <= ran, ran
    assert not {"screen_shard", "run_experiment", "mean_embedding_shard"} & ran, ran
    assert planned_jobs(run_snakemake(workflow_dir, "-n", "--configfile", "small.yaml")) == {}


def test_an_unfinished_shard_reruns_alone(workflow_dir):
    # as if the job of shard 1 was killed: only shard 0 finished
    (workflow_dir / "small.yaml").write_text(SMALL)
    run_snakemake(
        workflow_dir, "results/shapes/removed/shard-0.parquet", "--configfile", "small.yaml"
    )
    jobs = planned_jobs(run_snakemake(workflow_dir, "-n", "--configfile", "small.yaml"))
    assert jobs["remove_objects_shard"] == 1 and jobs["gather_removed"] == 1
    assert "filter_samples" not in jobs and "make_shapes" not in jobs


def _jpeg(w, h, colour):
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, format="JPEG")
    return buf.getvalue()


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _fake_coco(root):
    """A three-image COCO with the real archive layout, and a COCO-ReM file (uncompressed RLE)."""
    images = [
        {"id": i, "file_name": f"{i:012d}.jpg", "width": 320, "height": 240} for i in (1, 2, 3)
    ]
    cats = [
        {"id": 18, "name": "dog", "supercategory": "animal"},
        {"id": 62, "name": "chair", "supercategory": "furniture"},
    ]
    poly = lambda x, y, s: [[x, y, x + s, y, x + s, y + s, x, y + s]]  # noqa: E731
    coco_anns = [
        {
            "id": 100,
            "image_id": 1,
            "category_id": 18,
            "segmentation": poly(20, 20, 60),
            "iscrowd": 0,
            "area": 3600,
            "bbox": [20, 20, 60, 60],
        },
        {
            "id": 200,
            "image_id": 2,
            "category_id": 62,
            "segmentation": poly(50, 50, 80),
            "iscrowd": 0,
            "area": 6400,
            "bbox": [50, 50, 80, 80],
        },
        {
            "id": 300,
            "image_id": 3,
            "category_id": 18,
            "segmentation": poly(100, 60, 40),
            "iscrowd": 0,
            "area": 1600,
            "bbox": [100, 60, 40, 40],
        },
    ]

    def uncompressed(x, y, s):
        m = np.zeros((240, 320), np.uint8)
        m[y : y + s, x : x + s] = 1
        return uncompressed_rle(m)

    rem_anns = [
        {
            "id": 100,
            "image_id": 1,
            "category_id": 18,
            "segmentation": uncompressed(20, 20, 70),
            "iscrowd": 0,
        },
        {
            "id": 200,
            "image_id": 2,
            "category_id": 62,
            "segmentation": uncompressed(50, 50, 80),
            "iscrowd": 0,
        },
        {
            "id": 300,
            "image_id": 3,
            "category_id": 18,
            "segmentation": uncompressed(100, 60, 40),
            "iscrowd": 0,
        },
        # ReM found a second chair in image 2: the chair is no longer unique there
        {
            "id": 2024000000,
            "image_id": 2,
            "category_id": 62,
            "segmentation": uncompressed(200, 150, 50),
            "iscrowd": 0,
        },
    ]
    files = {
        "val2017.zip": _zip(
            {
                f"val2017/{im['file_name']}": _jpeg(320, 240, (i * 60, 90, 90))
                for i, im in enumerate(images)
            }
        ),
        "annotations_trainval2017.zip": _zip(
            {
                "annotations/instances_val2017.json": json.dumps(
                    {"images": images, "annotations": coco_anns, "categories": cats}
                ).encode(),
                "annotations/captions_val2017.json": b"{}",
            }
        ),
        "instances_valrem.json.zip": _zip(
            {
                "instances_valrem.json": json.dumps(
                    {"images": images, "annotations": rem_anns, "categories": cats}
                ).encode()
            }
        ),
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    return {name: hashlib.md5(data).hexdigest() for name, data in files.items()}


def _coco_overlay(server, md5s, val_md5=None):
    return f"""
run:
  datasets: [coco]
  models: []
datasets:
  coco:
    kind: coco
    inpainting: opencv
inpainting:
  shards: 2
downloads:
  retries: 1
  files:
    val2017.zip: {{url: "{server.url}/val2017.zip", md5: "{val_md5 or md5s["val2017.zip"]}"}}
    annotations_trainval2017.zip: {{url: "{server.url}/annotations_trainval2017.zip", md5: "{md5s["annotations_trainval2017.zip"]}"}}
    instances_valrem.json.zip: {{url: "{server.url}/instances_valrem.json.zip", md5: null}}
"""


def test_coco_pipeline_from_local_server(workflow_dir, http_server):
    md5s = _fake_coco(http_server.root)
    (workflow_dir / "coco.yaml").write_text(_coco_overlay(http_server, md5s))
    run_snakemake(workflow_dir, "--configfile", "coco.yaml")
    samples = pd.read_parquet(workflow_dir / "results/coco/samples.parquet")
    # ReM's masks are used (dog in image 1 grew to 70x70) and its added chair removes image 2's chair
    assert list(samples["ann_id"]) == [100, 300]
    assert samples.loc[0, "area"] == 70 * 70
    rem_md5 = (
        (workflow_dir / "resources/downloads/instances_valrem.json.zip.md5").read_text().strip()
    )
    assert rem_md5 == md5s["instances_valrem.json.zip"]
    assert len(pd.read_parquet(workflow_dir / "results/coco/removed.parquet")) == 2


def test_corrupt_download_fails_and_leaves_nothing(workflow_dir, http_server):
    md5s = _fake_coco(http_server.root)
    (workflow_dir / "coco.yaml").write_text(_coco_overlay(http_server, md5s, val_md5="0" * 32))
    proc = run_snakemake(
        workflow_dir, "resources/downloads/val2017.zip", "--configfile", "coco.yaml", check=False
    )
    assert proc.returncode != 0
    assert "does not match" in (workflow_dir / "logs/download/val2017.zip.log").read_text()
    left = list((workflow_dir / "resources/downloads").glob("val2017.zip*"))
    assert left == []


def test_paper_scope_dry_run(workflow_dir):
    jobs = planned_jobs(run_snakemake(workflow_dir, "-n", "--configfile", "config/paper.yaml"))
    # COCO's two archives, COCO-ReM, VOC, LaMa's weights
    assert jobs["download"] == 5 and jobs["correct_labels"] == 1 and jobs["convert_voc"] == 1
    assert jobs["prepare_model"] == 3  # the three hub checkpoints
    assert jobs["screen_shard"] == 2 * 3 * 8 and jobs["probing_subset"] == 2
    # token ablation on COCO (Table 1, 4) and matched ablation on VOC (Table 5): 8 shards per model
    # and attention knockout on COCO (Fig 3, Fig 12): 8 shards per model
    # the mean embedding: 4 shards per model over ImageNet val, one gather per model
    assert jobs["mean_embedding_shard"] == 3 * 4 and jobs["gather_mean_embedding"] == 3
    # + containerization and token shuffling on COCO (Fig 1, 8, 9, Table 2) for all three models,
    # and the view ablation (Table 3, Fig 10) for InternVL alone
    # + mediation (Fig 4, 14) sharded by pairs (4 per model) and head ablation (Fig 5, 15, 8 per model)
    assert jobs["run_experiment"] == 5 * 3 * 8 + 1 * 8 + 3 * 4 + 3 * 8
    assert (
        jobs["score_experiment"] == 5 * 3 + 1 + 3 and jobs["rank_heads"] == 3
    )  # mediation's shards go to rank_heads
    for rule in (
        "table_mediation",
        "figure_mediation",
        "table_head_ablation",
        "figure_head_ablation",
    ):
        assert jobs[rule] == 1, rule
    proc = run_snakemake(workflow_dir, "-n", "--configfile", "config/paper.yaml")
    blocks = re.split(r"\n(?=(?:local)?rule \w+:)", proc.stdout + proc.stderr)
    views = [
        b
        for b in blocks
        if b.startswith("rule run_experiment:") and "experiments/view_ablation/" in b
    ]
    assert len(views) == 8 and all("/internvl35_8b/" in b for b in views)
    assert "view_ablation: llava15_7b skipped" in proc.stdout + proc.stderr
    for rule in (
        "table_containerization",
        "figure_containerization",
        "table_token_shuffle",
        "table_view_ablation",
        "figure_view_ablation",
    ):
        assert jobs[rule] == 1, rule
    assert (
        jobs["table_token_ablation"] == 1
        and jobs["figure_token_ablation"] == 1
        and jobs["table_token_ablation_matched"] == 1
    )
    assert jobs["table_attention_knockout"] == 1 and jobs["figure_knockout"] == 1
    # the positional probes (Fig 2, Fig 11): one job per model over ImageNet, then tables and figures
    assert jobs["probe_model"] == 3
    for rule in (
        "table_probe_layers",
        "table_probe_best_layer",
        "table_probe_methods",
        "table_probe_line_breaks",
        "figure_probes_fig2",
        "figure_probes_fig11",
        "figure_probe_methods",
    ):
        assert jobs[rule] == 1, rule
    mediation = [
        b
        for b in blocks
        if b.startswith("rule run_experiment:")
        and "output: results/coco/experiments/mediation/" in b
    ]
    assert len(mediation) == 12 and all("gpu=1" in b for b in mediation)
    ablation = [
        b
        for b in blocks
        if b.startswith("rule run_experiment:")
        and "output: results/coco/experiments/token_ablation/" in b
    ]
    runtime = {
        m: re.search(r"runtime=(\d+)", b).group(1)
        for b in ablation
        for m in ("llava15_7b", "llava15_13b")
        if f"/{m}/" in b
    }
    assert int(runtime["llava15_7b"]) < int(runtime["llava15_13b"]), (
        runtime
    )  # resources from the FLOPs
    probe_jobs = [b for b in blocks if b.startswith("rule probe_model:")]
    assert len(probe_jobs) == 3 and all("gpu=1" in b for b in probe_jobs), probe_jobs
