from pathlib import Path

from vlmloc.data.coco import apply_label_correction, load_json, normalize, write_json
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    original_path = Path(snakemake.input.original) / "annotations" / "instances_val2017.json"
    original = load_json(original_path)
    if snakemake.params.correction == "coco_rem":
        corrected_path = Path(snakemake.input.corrected) / "instances_valrem.json"
        corrected = load_json(corrected_path)
        out = apply_label_correction(
            original, corrected, f"{corrected_path} (images from {original_path})"
        )
        log.info(
            "COCO-ReM: %d annotations replace COCO's %d",
            len(out["annotations"]),
            len(original["annotations"]),
        )
    else:
        out = normalize(original, str(original_path))
    invalid = [a["id"] for a in out["annotations"] if "invalid" in a]
    if invalid:
        log.warning(
            "%d segmentations cannot be converted (annotations %s); filter_samples rejects them",
            len(invalid),
            invalid,
        )
    write_json(out, snakemake.output[0])
