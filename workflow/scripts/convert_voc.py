from pathlib import Path

from vlmloc.data.coco import write_json
from vlmloc.data.voc import convert
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    coco = convert(Path(snakemake.input[0]) / "VOCdevkit" / "VOC2012", split=snakemake.params.split)
    log.info(
        "VOC %s: %d images, %d instances",
        snakemake.params.split,
        len(coco["images"]),
        len(coco["annotations"]),
    )
    write_json(coco, snakemake.output[0])
