# Data stages: download -> unpack -> label correction / conversion -> filtering -> object removal.
# The synthetic shapes dataset enters at the same place as COCO's corrected annotations.


rule download:
    """Checksummed, resumable download; a mismatch leaves no file behind."""
    output:
        "resources/downloads/{file}",
    log:
        "logs/download/{file}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=512,
        runtime=120,
        downloads=1,
    params:
        url=lambda w: DOWNLOADS[w.file]["url"],
        md5=lambda w: DOWNLOADS[w.file].get("md5"),
        retries=config["downloads"]["retries"],
        timeout=config["downloads"]["timeout_s"],
    script:
        "../scripts/download.py"


rule unpack_coco_images:
    input:
        "resources/downloads/val2017.zip",
    output:
        directory("resources/coco/images"),
    log:
        "logs/unpack/coco_images.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1024,
        runtime=30,
    params:
        members=["val2017/"],
    script:
        "../scripts/unpack.py"


rule unpack_coco_annotations:
    input:
        "resources/downloads/annotations_trainval2017.zip",
    output:
        directory("resources/coco/annotations_raw"),
    log:
        "logs/unpack/coco_annotations.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1024,
        runtime=10,
    params:
        members=["annotations/instances_val2017.json"],
    script:
        "../scripts/unpack.py"


rule unpack_coco_rem:
    input:
        "resources/downloads/instances_valrem.json.zip",
    output:
        directory("resources/coco/rem_raw"),
    log:
        "logs/unpack/coco_rem.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1024,
        runtime=10,
    params:
        members=[""],
    script:
        "../scripts/unpack.py"


rule correct_labels:
    """COCO-ReM annotations replace COCO's (label_correction: coco_rem); masks -> compressed RLE."""
    input:
        original="resources/coco/annotations_raw",
        corrected=lambda w: (
            "resources/coco/rem_raw" if w.correction == "coco_rem" else []
        ),
    output:
        "resources/coco/instances_val2017.{correction}.json",
    log:
        "logs/correct_labels/{correction}.log",
    wildcard_constraints:
        correction="coco_rem|none",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        correction="{correction}",
    script:
        "../scripts/correct_labels.py"


rule unpack_voc:
    input:
        "resources/downloads/VOCtrainval_11-May-2012.tar",
    output:
        directory("resources/voc/raw"),
    log:
        "logs/unpack/voc.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1024,
        runtime=60,
    params:
        members=[
            f"VOCdevkit/VOC2012/{d}/"
            for d in (
                "JPEGImages",
                "SegmentationObject",
                "SegmentationClass",
                "ImageSets/Segmentation",
            )
        ],
    script:
        "../scripts/unpack.py"


rule convert_voc:
    """VOC2012 instance segmentation -> COCO-format JSON (only images that have masks)."""
    input:
        "resources/voc/raw",
    output:
        "resources/voc/annotations.{split}.json",
    log:
        "logs/convert_voc/{split}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        split="{split}",
    script:
        "../scripts/convert_voc.py"


rule make_shapes:
    """The synthetic shapes dataset, deterministic from its seed, with exact removed images."""
    output:
        annotations="resources/shapes/{shapes_name}/annotations.json",
        images=directory("resources/shapes/{shapes_name}/images"),
        removed=directory("resources/shapes/{shapes_name}/removed"),
    log:
        "logs/make_shapes/{shapes_name}.log",
    priority: 20
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        spec=lambda w: {
            k: DATASETS[w.shapes_name][k]
            for k in (
                "n_images",
                "seed",
                "colours",
                "shapes",
                "long_side",
                "aspect",
                "min_objects",
                "max_objects",
            )
        },
    script:
        "../scripts/make_shapes.py"


rule filter_samples:
    """The validation pass (every image decoded once, masks, references) and the appendix 6.1
    filters -> the sample table (one row per image-object pair), step counts, rejected samples.
    Data that cannot be trusted at all stops the run here, before any model job."""
    input:
        annotations=annotations_of,
        images=image_dir_of,
    output:
        samples="results/{dataset}/samples.parquet",
        counts=report(
            "results/{dataset}/tables/filter_counts.tsv",
            caption="../report/filter_counts.rst",
            category="Data",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "filter counts"},
        ),
        rejected=report(
            "results/{dataset}/tables/rejected.tsv",
            caption="../report/rejected.rst",
            category="Data",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "rejected samples"},
        ),
    log:
        "logs/filter_samples/{dataset}.log",
    priority: 20
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        filter=filter_params(),
        image_root=image_root_of,
        kind=lambda w: ds(w)["kind"],
    script:
        "../scripts/filter_samples.py"


rule remove_objects_shard:
    """Object-removed copies of one shard of the samples (a rerun touches only its own shard)."""
    input:
        samples="results/{dataset}/samples.parquet",
        exact=exact_removed_dir,
        lama=lama_weights,
    output:
        images=directory("results/{dataset}/removed/shard-{shard}"),
        index="results/{dataset}/removed/shard-{shard}.parquet",
    log:
        "logs/remove_objects/{dataset}/shard-{shard}.log",
    priority: 20
    conda:
        "../../envs/inpainting.yaml"
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=lambda w: 1 if ds(w)["inpainting"] == "lama" else 0,
    params:
        removal=removal_params,
        device=config["inpainting"]["device"],
    script:
        "../scripts/remove_objects.py"


rule gather_removed:
    """The shards' object-removed images in one index (fails when a sample is missing or twice)."""
    input:
        shards=lambda w: expand(
            "results/{{dataset}}/removed/shard-{shard}.parquet",
            shard=range(config["inpainting"]["shards"]),
        ),
        samples="results/{dataset}/samples.parquet",
    output:
        "results/{dataset}/removed.parquet",
    log:
        "logs/gather_removed/{dataset}.log",
    priority: 20
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/gather_removed.py"
