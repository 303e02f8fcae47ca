# Toy VLMs trained from scratch on the synthetic shapes (not in the default target: the trained
# checkpoints are committed under checkpoints/, and the demo uses those).


rule train_toy_model:
    """Build a toy model from configs and train it; writes the checkpoint and its curves."""
    output:
        directory("resources/trained/{toy}"),
    log:
        "logs/train_toy_model/{toy}.log",
    conda:
        "../../envs/models.yaml"
    threads: lambda w: config["toy_training"][w.toy]["threads"]
    resources:
        mem_mb=12000,
        runtime=240,
    params:
        config=lambda w: dict(sorted(config["toy_training"][w.toy].items())),
    script:
        "../scripts/train_toy_model.py"
