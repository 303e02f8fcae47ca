"""The data stages through Snakemake, as a user runs them (in a temp copy of the workflow)."""

import hashlib
import io
import json
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
from conftest import (
    ROOT,
    TOY_DEMO,
    copy_run,
    copy_workflow,
    run_snakemake,
    serve,
    stop,
    uncompressed_rle,
)
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


def test_demo_data_stages(toy_demo):
    """The data stages of the session's toy demo run: samples, their object-removed images,
    the filter's counts and figure, screening's answers for both toys."""
    samples = pd.read_parquet(toy_demo / "results/shapes/samples.parquet")
    removed = pd.read_parquet(toy_demo / "results/shapes/removed.parquet")
    assert len(samples) > 0 and list(removed["sample_id"]) == list(samples["sample_id"])
    assert all((toy_demo / p).is_file() for p in removed["removed_path"])
    counts = pd.read_csv(toy_demo / "results/shapes/tables/filter_counts.tsv", sep="\t")
    assert counts["annotations"].iloc[-1] == len(samples)
    assert (toy_demo / "logs/filter_samples/shapes.log").exists()
    for model in ("toy_llava", "toy_internvl"):
        answers = pd.read_parquet(toy_demo / f"results/shapes/screening/{model}/answers.parquet")
        # every sample, on its original and its object-removed image, in the three tasks
        assert len(answers) == len(samples) * 2 * 3 and answers["answer"].notna().all()
        assert set(answers["sample_id"]) == set(samples["sample_id"])
    counts = pd.read_csv(toy_demo / "results/shapes/tables/screening_counts.tsv", sep="\t")
    assert counts["annotations"].iloc[0] == len(samples)


def test_a_filter_threshold_reruns_filtering_and_what_follows(toy_demo):
    """A filter threshold reruns filtering in every dataset and exactly what depends on it (the
    jobs Snakemake plans when filtering is forced), nothing upstream of the samples or beside
    them (shapes, mean embedding, probes)."""
    (toy_demo / "thresh.yaml").write_text(TOY_DEMO + "filter:\n  min_side: 150\n")
    jobs = planned_jobs(run_snakemake(toy_demo, "-n", "--configfile", "thresh.yaml"))
    forced = run_snakemake(toy_demo, "-n", "--configfile", "toy.yaml", "-R", "filter_samples")
    assert jobs == planned_jobs(forced)
    assert jobs["filter_samples"] == 3 and jobs["screen_shard"] == 3 * 2, jobs
    # shapes: 6 experiments x 2 toys and token ablation's second shard; shapes_voc: Table 5 for
    # both; shapes_wide: the view ablation for the toy InternVL alone
    assert jobs["run_experiment"] == 6 * 2 + 2 + 2 + 1 and jobs["table_token_ablation"] == 1, jobs
    beside = {"make_shapes", "mean_embedding_shard", "gather_mean_embedding", "probe_model"}
    assert not beside & set(jobs), jobs


def test_a_parser_fix_rescores_and_reruns_no_model_job(toy_demo, tmp_path):
    """An edit of the parser (src/vlmloc/tasks.py) rescores screening and every experiment and
    reruns no model job: the probing subset is a checkpoint whose ids did not change."""
    wf = copy_run(toy_demo, tmp_path / "wf")
    tasks_py = wf / "src/vlmloc/tasks.py"
    tasks_py.write_text(tasks_py.read_text() + "\n# a parser fix\n")
    jobs = planned_jobs(run_snakemake(wf, "-n", "--configfile", "toy.yaml"))
    assert jobs["score_experiment"] == 13 and jobs["gather_screening"] == 6, jobs
    assert jobs["table_token_ablation"] == 1 and jobs["table_view_ablation"] == 1, jobs
    model_jobs = {"screen_shard", "mean_embedding_shard", "gather_mean_embedding", "probe_model"}
    assert not model_jobs & set(jobs), jobs
    target = (
        "results/shapes_voc/tables/table5_token_ablation_matched.tsv",
        "--configfile",
        "toy.yaml",
    )
    out = run_snakemake(wf, *target)
    ran = set(re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", out.stdout + out.stderr, re.M))
    assert {
        "gather_screening",
        "probing_subset",
        "score_experiment",
        "table_token_ablation_matched",
    } <= ran, ran
    assert not {"run_experiment", *model_jobs} & ran, ran
    assert planned_jobs(run_snakemake(wf, "-n", *target)) == {}


def test_an_empty_probing_subset_runs_to_the_end(workflow_dir):
    """A random-weight tiny model identifies no object: its probing subset is empty, and every
    experiment, table and figure after it is still made, the tables with their columns and no
    row; a second run has nothing to do."""
    (workflow_dir / "small.yaml").write_text(SMALL)
    run_snakemake(workflow_dir, "--configfile", "small.yaml")
    samples = pd.read_parquet(workflow_dir / "results/shapes/samples.parquet")
    answers = pd.read_parquet(
        workflow_dir / "results/shapes/screening/tiny_internvl/answers.parquet"
    )
    assert len(answers) == len(samples) * 2 * 3 and answers["answer"].notna().all()
    assert (
        "probing subset is EMPTY" in (workflow_dir / "logs/probing_subset/shapes.log").read_text()
    )
    tables = workflow_dir / "results/shapes/tables"
    acc = pd.read_csv(tables / "baseline_accuracy.tsv", sep="\t")
    assert set(acc["model"]) == {"tiny_internvl"}
    for name in (
        "table1_token_ablation",
        "table2_token_shuffle",
        "table4_random_ablation",
        "containerization_cells",
        "knockout_layers",
        "mediation_heads",
        "head_ablation_curves",
        "head_ablation_auc",
        "head_ablation_contrasts",
    ):
        t = pd.read_csv(tables / f"{name}.tsv", sep="\t")
        assert t.empty and "model" in t.columns, name
    figures = workflow_dir / "results/shapes/figures"
    for name in (
        "token_ablation",
        "knockout_fig3",
        "containerization_fig1",
        "mediation_fig4",
        "head_ablation_fig5",
    ):
        assert (figures / f"{name}.png").is_file() and (figures / f"{name}.pdf").is_file(), name
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


def _fake_coco(root, bad: bool = False, edit_rem=None):
    """A three-image COCO with the real archive layout, and a COCO-ReM file (uncompressed RLE);
    ``bad``: plus one image or annotation of each class of bad data (``_add_bad_cases``);
    ``edit_rem``: called on the list of ReM annotations before it is written."""
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
    image_files = {
        f"val2017/{im['file_name']}": _jpeg(320, 240, (i * 60, 90, 90))
        for i, im in enumerate(images)
    }
    if bad:
        _add_bad_cases(images, image_files, rem_anns)
    if edit_rem:
        edit_rem(rem_anns)
    files = {
        "val2017.zip": _zip(image_files),
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


BAD_CASES = {  # ReM annotation id -> the check that rejects its sample (None: kept, converted)
    400: "image_unreadable",  # a truncated JPEG
    500: "image_size",  # the file is 300 wide, the JSON says 320
    600: "image_missing",  # listed, not in the archive
    700: None,  # a 16-bit grayscale PNG: rescaled to 8 bit
    800: None,  # an RGBA PNG: alpha composited on white
    900: "mask_grid",  # a mask on a 120x160 grid for a 240x320 image
    1000: "unknown_category",
    1100: "unknown_image",  # image 99 is not listed
    1200: "mask_empty",
}


def _add_bad_cases(images, image_files, rem_anns):
    def png(array, mode=None):
        buf = io.BytesIO()
        Image.fromarray(array, mode).save(buf, format="PNG")
        return buf.getvalue()

    def square(x, y, s, h=240, w=320):
        m = np.zeros((h, w), np.uint8)
        m[y : y + s, x : x + s] = 1
        return uncompressed_rle(m)

    gray16 = np.full((240, 320), 30000, np.uint16)
    gray16[100:160, 100:160] = 60000
    rgba = np.zeros((240, 320, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    rgba[:, :40, 3] = 0  # a transparent strip
    jpeg = _jpeg(320, 240, (10, 200, 10))
    contents = {
        4: ("jpg", jpeg[: len(jpeg) // 2]),
        5: ("jpg", _jpeg(300, 240, (10, 10, 200))),
        6: ("jpg", None),
        7: ("png", png(gray16)),
        8: ("png", png(rgba, "RGBA")),
        9: ("jpg", _jpeg(320, 240, (90, 90, 10))),
        10: ("jpg", _jpeg(320, 240, (90, 10, 90))),
        12: ("jpg", _jpeg(320, 240, (30, 30, 30))),
    }
    for i, (ext, data) in contents.items():
        im = {"id": i, "file_name": f"{i:012d}.{ext}", "width": 320, "height": 240}
        images.append(im)
        if data is not None:
            image_files[f"val2017/{im['file_name']}"] = data
    masks = {900: square(10, 10, 40, 120, 160), 1200: {"size": [240, 320], "counts": [240 * 320]}}
    for ann_id in BAD_CASES:
        image_id = {1100: 99, 1200: 12}.get(ann_id, ann_id // 100)
        rem_anns.append(
            {
                "id": ann_id,
                "image_id": image_id,
                "category_id": 999 if ann_id == 1000 else 18,
                "segmentation": masks.get(ann_id, square(100, 100, 60)),
                "iscrowd": 0,
            }
        )


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


@pytest.fixture(scope="module")
def clean_coco(tmp_path_factory):
    """The fake COCO (three images, no bad case) through the data stages, once: the finished
    run and the md5s it was served with."""
    root = tmp_path_factory.mktemp("clean_coco")
    server = serve(root / "served")
    try:
        md5s = _fake_coco(server.root)
        wf = copy_workflow(root / "wf")
        (wf / "coco.yaml").write_text(_coco_overlay(server, md5s))
        run_snakemake(wf, "--configfile", "coco.yaml")
    finally:
        stop(server)
    return wf, md5s


def test_coco_pipeline_from_local_server(clean_coco):
    workflow_dir, md5s = clean_coco
    samples = pd.read_parquet(workflow_dir / "results/coco/samples.parquet")
    # ReM's masks are used (dog in image 1 grew to 70x70) and its added chair removes image 2's chair
    assert list(samples["ann_id"]) == [100, 300]
    assert samples.loc[0, "area"] == 70 * 70
    rem_md5 = (
        (workflow_dir / "resources/downloads/instances_valrem.json.zip.md5").read_text().strip()
    )
    assert rem_md5 == md5s["instances_valrem.json.zip"]
    assert len(pd.read_parquet(workflow_dir / "results/coco/removed.parquet")) == 2


def test_bad_coco_data_is_rejected_by_name_and_good_samples_do_not_change(
    tmp_path, http_server, clean_coco
):
    # the clean COCO's run, and the same plus one bad case of each class
    clean = clean_coco[0]
    wf = copy_workflow(tmp_path / "wf")
    md5s = _fake_coco(http_server.root, bad=True)
    (wf / "coco.yaml").write_text(_coco_overlay(http_server, md5s))
    run_snakemake(wf, "--configfile", "coco.yaml")
    rejected = pd.read_csv(wf / "results/coco/tables/rejected.tsv", sep="\t")
    assert dict(zip(rejected["ann_id"], rejected["check"], strict=True)) == {
        k: v for k, v in BAD_CASES.items() if v
    }
    reason = dict(zip(rejected["ann_id"], rejected["reason"], strict=True))
    image = "resources/coco/images/val2017/{:012d}.{}".format
    assert reason[400].startswith(
        f"{image(4, 'jpg')}: cannot decode image (image file is truncated"
    )
    assert reason[500].startswith(f"{image(5, 'jpg')} is 300x240 pixels (w x h) but ")
    assert reason[600] == f"{image(6, 'jpg')}: image file not found"
    assert "grid (RLE size) is 120x160 (h x w) but its image is 240x320" in reason[900]
    assert reason[1000].startswith("category_id 999 is not in resources/coco/instances_val2017")
    assert reason[1100].startswith("image_id 99 is not in resources/coco/instances_val2017")
    assert reason[1200] == "the mask is empty (0 pixels)"
    assert rejected.set_index("ann_id").loc[400, "file"] == image(4, "jpg")

    samples = pd.read_parquet(wf / "results/coco/samples.parquet").set_index("ann_id")
    before = pd.read_parquet(clean / "results/coco/samples.parquet").set_index("ann_id")
    assert sorted(samples.index) == [100, 300, 700, 800]
    pd.testing.assert_frame_equal(samples.loc[before.index], before)
    removed = pd.read_parquet(wf / "results/coco/removed.parquet").set_index("sample_id")
    removed_before = pd.read_parquet(clean / "results/coco/removed.parquet").set_index("sample_id")
    for sid in removed_before.index:  # the good samples' object-removed images are unchanged
        a = np.asarray(Image.open(wf / removed.loc[sid, "removed_path"]))
        b = np.asarray(Image.open(clean / removed_before.loc[sid, "removed_path"]))
        assert np.array_equal(a, b), sid
    # the 16-bit image is rescaled (30000 -> 117), not saturated to white; RGBA on white
    gray = np.asarray(Image.open(wf / removed.loc["7_700", "removed_path"]))
    assert (gray[:80, :80] == round(30000 / 257)).all()
    rgba = np.asarray(Image.open(wf / removed.loc["8_800", "removed_path"]))
    assert (rgba[:, :30] == 255).all() and (rgba[:80, 60:90] == (200, 0, 0)).all()

    counts = pd.read_csv(wf / "results/coco/tables/filter_counts.tsv", sep="\t")
    assert counts["annotations"][0] - counts["annotations"][1] == len(rejected) == 7
    log = (wf / "logs/filter_samples/coco.log").read_text()
    assert "1 images converted: I;16: rescaled from 16 bit to 8 bit" in log
    assert "1 images converted: RGBA: alpha composited on (255, 255, 255)" in log


def _duplicate_ids(rem_anns):
    first = {a["id"]: a for a in rem_anns}
    rem_anns.append(dict(first[100], image_id=3))
    rem_anns.append(dict(first[300], image_id=1))


def test_untrusted_coco_stops_before_the_samples_naming_every_offender(workflow_dir, http_server):
    md5s = _fake_coco(http_server.root, edit_rem=_duplicate_ids)
    (workflow_dir / "coco.yaml").write_text(_coco_overlay(http_server, md5s))
    proc = run_snakemake(workflow_dir, "--configfile", "coco.yaml", check=False)
    assert proc.returncode != 0
    log = (workflow_dir / "logs/correct_labels/coco_rem.log").read_text()
    assert "the annotation file cannot be trusted, 2 problem(s)" in log
    assert "annotation id 100 appears 2 times (images 1, 3)" in log
    assert "annotation id 300 appears 2 times (images 1, 3)" in log
    assert not (workflow_dir / "results/coco/samples.parquet").exists()


def test_no_sample_left_stops_at_the_filter_naming_the_counts(workflow_dir, http_server):
    md5s = _fake_coco(http_server.root)
    overlay = _coco_overlay(http_server, md5s) + "filter:\n  min_side: 1000\n"
    (workflow_dir / "coco.yaml").write_text(overlay)
    proc = run_snakemake(workflow_dir, "--configfile", "coco.yaml", check=False)
    assert proc.returncode != 0
    log = (workflow_dir / "logs/filter_samples/coco.log").read_text()
    assert "dataset coco: no sample is left after validation and filtering" in log
    assert "min image side >= 1000px: 0 annotations in 0 images" in log
    assert "random-weight" not in log
    assert not list((workflow_dir / "results/coco").glob("removed*"))


def test_a_damaged_shard_is_deleted_and_the_rerun_rebuilds_it(workflow_dir):
    (workflow_dir / "small.yaml").write_text(SMALL)
    target = ("results/shapes/removed.parquet", "--configfile", "small.yaml")
    run_snakemake(workflow_dir, *target)
    gathered = pd.read_parquet(workflow_dir / target[0])
    shard = workflow_dir / "results/shapes/removed/shard-1.parquet"
    shard.write_bytes(shard.read_bytes()[:100])  # as if the disk filled up while it was copied
    proc = run_snakemake(workflow_dir, *target, check=False)
    assert proc.returncode != 0 and not shard.exists()
    log = (workflow_dir / "logs/gather_removed/shapes.log").read_text()
    assert f"{shard.relative_to(workflow_dir)}: ArrowInvalid" in log
    assert "have been DELETED; run the workflow again and it rebuilds them" in log
    jobs = planned_jobs(run_snakemake(workflow_dir, "-n", *target))
    assert jobs == {"remove_objects_shard": 1, "gather_removed": 1}
    run_snakemake(workflow_dir, *target)
    pd.testing.assert_frame_equal(pd.read_parquet(workflow_dir / target[0]), gathered)


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
    assert jobs["figure_token_grid"] == 3 and jobs["figure_token_grid_ig"] == 6  # Fig 7, IG grids
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
