# Models: a hub checkpoint is snapshot-downloaded once into resources/models/<name>; a tiny
# random-weight model is built from configs there. Later jobs load from that folder.


rule prepare_model:
    output:
        directory("resources/models/{model}"),
    log:
        "logs/prepare_model/{model}.log",
    conda:
        "../../envs/models.yaml"
    resources:
        mem_mb=4000,
        runtime=240,
        downloads=1,
    params:
        source=model_source,
    script:
        "../scripts/prepare_model.py"
