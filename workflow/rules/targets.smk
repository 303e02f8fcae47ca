# What the default target builds: per dataset its data stages, screening and experiments' tables
# and figures, the probes', and the rules that run on the host that runs Snakemake.


from vlmloc.workflow import targets as default_targets


def all_targets():
    return default_targets.all_targets(config, experiment_datasets, probe_models())


# Downloads (compute nodes often have no internet) and the rules that only draw tables and
# figures from small files run where Snakemake runs; under profiles/slurm everything else is a job.


def local_rules():
    return [
        r.name
        for r in workflow.rules
        if r.name in LOCAL_RULES or r.name.startswith(LOCAL_RULE_PREFIXES)
    ]


# say once, when the workflow is read, which models skip which experiment and why


LOCAL_RULES = ("all", "download", "prepare_model")
LOCAL_RULE_PREFIXES = ("table_", "figure_")
