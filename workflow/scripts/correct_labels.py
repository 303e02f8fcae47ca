from pathlib import Path

from vlmloc.data.coco import apply_label_correction, load_json, normalize, write_json
from vlmloc.workflow import logged

with logged(snakemake) as log:
    original = load_json(Path(snakemake.input.original) / "annotations" / "instances_val2017.json")
    if snakemake.params.correction == "coco_rem":
        corrected = load_json(Path(snakemake.input.corrected) / "instances_valrem.json")
        out = apply_label_correction(original, corrected)
        log.info(
            "COCO-ReM: %d annotations replace COCO's %d",
            len(out["annotations"]),
            len(original["annotations"]),
        )
    else:
        out = normalize(original)
    write_json(out, snakemake.output[0])
