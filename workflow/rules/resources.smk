# What each model job asks an executor for (mem_mb, runtime, cpus_per_task, gpu; threads): from
# the model's size and the job's necessary FLOPs (vlmloc.workload). The pure logic is
# vlmloc.workflow.resources (unit-tested); this file feeds it the config and the wildcards.


JOB = config["job_resources"]
# the rules that run a model (their wall time comes from their FLOPs: model_job_flops)
MODEL_JOB_RULES = (
    "screen_shard",
    "mean_embedding_shard",
    "run_experiment",
    "probe_model",
)


def model_gpus(name):
    """GPUs of a model job (vlmloc.workflow.resources.gpus)."""
    return model_resources.gpus(MODELS[name], JOB)


def model_geometry(name):
    """What the FLOP count of a model's jobs needs: the published dimensions of a paper model, or a
    local checkpoint's config.json; None when neither is there yet (a tiny model not yet built).
    """
    m = MODELS[name]
    if m.get("paper_name"):
        return workload.Geometry.of_paper(m["paper_name"])
    folder = Path(model_dir(name))
    if not (folder / "config.json").exists():
        return None
    return adapter_class(name).flops_geometry(folder, m)  # its config keys, its views


# before a dataset's probing subset exists: the paper's 2,248 on COCO (sec. 2.2); VOC's is not
# published (an estimate); a shapes set keeps about 70% of its images
EXPECTED_SUBSET = {"coco": 2248, "voc": 1500}


def expected_samples(dataset):
    d = DATASETS[dataset]
    guess = EXPECTED_SUBSET.get(d["kind"], math.ceil(0.7 * d.get("n_images", 100)))
    return model_resources.expected_count(
        f"results/{dataset}/probing_subset_ids.txt", guess
    )


def model_job_flops(rule_name, name, wildcards):
    """The necessary FLOPs of one model job (vlmloc.workload), or None without a geometry."""
    g = model_geometry(name)
    if g is None:
        return None
    if rule_name == "screen_shard":
        d = DATASETS[wildcards.dataset]
        guess = {"coco": 6403}.get(d["kind"], math.ceil(2.3 * d.get("n_images", 100)))
        n = model_resources.expected_count(
            f"results/{wildcards.dataset}/samples.parquet", guess
        )
        return workload.screening_flops(g, n) / config["screening"]["shards"]
    if rule_name == "mean_embedding_shard":
        e = config["mean_embedding"]
        n = (
            e["n_images"] or 50000
        )  # null: every image of the folder (the paper: ImageNet val)
        return workload.mean_embedding_flops(g, n) / e["shards"]
    if rule_name == "probe_model":
        p = config["probes"]
        passes = (
            p["epochs"] if "sgd" in p["methods"] else 0
        ) + 2  # SGD's epochs, the closed forms, the untrained control
        return workload.probe_flops(g, p["n_train"], p["n_test"], passes)
    e = wildcards.experiment
    settings = experiment_settings(e, name)
    n = expected_samples(wildcards.dataset)
    if e == "head_ablation" and settings["pool"] == "disjoint":
        n -= settings["pairs"]["n_pairs"]
    return (
        workload.experiment_flops(g, e, settings, max(n, 1)) / EXPERIMENTS[e]["shards"]
    )


def model_job_resources(rule_name, name, wildcards, attempt=1):
    """mem_mb, runtime (minutes), cpus_per_task, gpu and threads of one job of `rule_name` on model
    `name`: vlmloc.workflow.resources.model_job_resources with the job's necessary FLOPs
    (`model_job_flops`) and `job_resources`."""
    flops = model_job_flops(rule_name, name, wildcards)
    return model_resources.model_job_resources(MODELS[name], JOB, flops, attempt)


def model_job(rule_name, key):
    """One resource of `rule_name`'s model job (mem_mb, runtime, cpus_per_task, gpu) or its threads,
    as a function of the job's wildcards (and attempt)."""
    if key == "threads":
        return lambda w: model_job_resources(rule_name, w.model, w)[key]
    return lambda w, attempt: model_job_resources(rule_name, w.model, w, attempt)[key]


def model_job_resource_set(rule_name):
    """Every model rule's `resources:` (written once: `resources: **model_job_resource_set(rule)`);
    any executor reads them, profiles/slurm turns them into --mem, --time, --cpus-per-task, --gpus.
    """
    return {
        key: model_job(rule_name, key)
        for key in ("mem_mb", "runtime", "cpus_per_task", "gpu")
    }


def model_job_params():
    """The params that every model job passes to its script: the model's loading settings,
    its device, batch size and vision cache."""
    return {
        "model": lambda w: model_settings(w.model),
        "device": lambda w: MODELS[w.model]["device"],
        "batch_size": lambda w: MODELS[w.model]["batch_size"],
        "vision_cache_mb": lambda w: MODELS[w.model]["vision_cache_mb"],
        "gpu_memory_fraction": JOB["gpu_memory_fraction"],
    }
