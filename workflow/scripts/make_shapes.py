from pathlib import Path

from vlmloc.data.shapes import ShapesSpec, generate
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    p = dict(snakemake.params.spec)
    spec = ShapesSpec(
        colours=tuple(p["colours"]),
        shapes=tuple(p["shapes"]),
        long_side=tuple(p["long_side"]),
        aspect=tuple(p["aspect"]),
        min_objects=p["min_objects"],
        max_objects=p["max_objects"],
    )
    out = Path(snakemake.output.annotations).parent
    coco = generate(out, n_images=p["n_images"], seed=p["seed"], spec=spec)
    log.info(
        "shapes: %d images, %d objects, %d categories",
        len(coco["images"]),
        len(coco["annotations"]),
        len(coco["categories"]),
    )
