# vlmloc: regenerates the tables and figures of "Mechanisms of Object Localization in
# Vision-Language Models". Default config: the embedded synthetic demo (runs anywhere on CPU).
# The paper's scope:  snakemake --configfile config/paper.yaml --cores N


from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/resources.smk"
include: "workflow/rules/targets.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/screening.smk"
include: "workflow/rules/experiments.smk"
include: "workflow/rules/containerization.smk"
include: "workflow/rules/heads.smk"
include: "workflow/rules/probes.smk"
include: "workflow/rules/toy.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/mechanisms.smk"


rule all:
    default_target: True
    input:
        all_targets(),


# after every rule is defined: the `localrules:` directive for the rules local_rules() names
workflow.localrules(*local_rules())
