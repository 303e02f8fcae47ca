"""Training and held-out data for the toy VLMs, made with the same generator, filters, adapters
and token geometry as the workflow (so what the model learns is what the workflow asks)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..data.shapes import ShapesSpec, render_scene
from ..geometry import grids_to_indices, mask_grids
from ..models.base import Adapter
from ..tasks import task_prompt


@dataclass
class PoolImage:
    views: np.ndarray  # (n_views, S, S, 3) uint8, as the adapter resizes them
    n_tokens: int
    size: tuple[int, int]
    objects: list[dict]  # category index, box (x1, y1, x2, y2) in original px, unique flag
    token_labels: np.ndarray  # (n_tokens, n_categories) uint8: category present in the token's cell
    token_xy: np.ndarray  # (n_tokens, 2) float32: cell centre in its view's frame (0..1)
    token_box: np.ndarray  # (n_tokens, 4) float32: box of the object in the cell (view frame, clipped), NaN on background


def pool_scene(spec: ShapesSpec, seed: int, i: int):
    """Scene ``i`` of the training pool of ``seed``: (image, background, objects) of
    ``render_scene``. Indices at or past the pool's size are scenes training never saw."""
    return render_scene(np.random.default_rng([seed, i]), spec)


def make_pool(
    adapter: Adapter, spec: ShapesSpec, n: int, seed: int, progress: bool = True
) -> list[PoolImage]:
    """``n`` rendered scenes; image i is ``pool_scene(spec, seed, i)``."""
    cat_index = {c: k for k, c in enumerate(spec.categories)}
    pool = []
    for i in tqdm(range(n), desc="render training images", disable=not progress, mininterval=10):
        image, _, objects = pool_scene(spec, seed, i)
        h, w = image.shape[:2]
        pil = Image.fromarray(image)
        layout = adapter.layout(w, h)
        labels = np.zeros((layout.n_tokens, len(spec.categories)), np.uint8)
        counts: dict[str, int] = {}
        for o in objects:
            counts[o["category"]] = counts.get(o["category"], 0) + 1
        # Targets in each view's own frame: a view's tokens cannot know where the view lies in the
        # image (InternVL's tiles); for a view that shows the whole image as the answer frame
        # does (LLaVA's padded square, InternVL's thumbnail) this is the answer's box itself.
        table = sorted(layout.token_table(), key=lambda d: d["token"])
        region = {v.name: v.region for v in layout.views}
        frame = np.array([region[d["view"]] for d in table], np.float32)
        fx0, fy0, fw, fh = (
            frame[:, 0],
            frame[:, 1],
            frame[:, 2] - frame[:, 0],
            frame[:, 3] - frame[:, 1],
        )
        xy = np.stack(
            [
                [((d["x0"] + d["x1"]) / 2) for d in table] - fx0,
                [((d["y0"] + d["y1"]) / 2) for d in table] - fy0,
            ],
            1,
        )
        xy = xy / np.stack([fw, fh], 1)
        boxes = np.full((layout.n_tokens, 4), np.nan, np.float32)
        objs, cells_of = [], []
        for o in objects:
            k = cat_index[o["category"]]
            on = grids_to_indices(layout, mask_grids(layout, o["mask"]))
            labels[on, k] = 1
            ys, xs = np.nonzero(o["mask"])
            objs.append(
                {
                    "category": k,
                    "box": (
                        float(xs.min()),
                        float(ys.min()),
                        float(xs.max() + 1),
                        float(ys.max() + 1),
                    ),
                    "unique": counts[o["category"]] == 1,
                }
            )
            cells_of.append(on)
        # a cell with several objects gets the box of its lowest category, the class it is trained to name
        for j in sorted(range(len(objs)), key=lambda j: -objs[j]["category"]):
            t = cells_of[j]
            bx1, by1, bx2, by2 = objs[j]["box"]
            boxes[t] = np.clip(
                np.stack(
                    [
                        (bx1 - fx0[t]) / fw[t],
                        (by1 - fy0[t]) / fh[t],
                        (bx2 - fx0[t]) / fw[t],
                        (by2 - fy0[t]) / fh[t],
                    ],
                    1,
                ),
                0,
                1,
            )
        views = np.stack([np.asarray(v) for v in adapter.views(pil)])
        pool.append(
            PoolImage(views, layout.n_tokens, (w, h), objs, labels, xy.astype(np.float32), boxes)
        )
    return pool


def questions(
    adapter: Adapter,
    item: PoolImage,
    categories: list[str],
    rng: np.random.Generator,
    n: int = 4,
    max_localization: int = 2,
) -> list[tuple[str, str]]:
    """``n`` (prompt text, answer text) pairs for one image: up to ``max_localization``
    localization questions (distinct uniquely-present objects; the hardest task gets the most
    practice), the category list, and yes/no queries (present or absent category, 50/50)."""
    w, h = item.size
    present = sorted({o["category"] for o in item.objects})
    out = []
    unique = [o for o in item.objects if o["unique"]]
    for k in rng.permutation(len(unique))[:max_localization]:
        o = unique[int(k)]
        out.append(
            (
                task_prompt("localization", categories[o["category"]], categories),
                adapter.format_box(o["box"], w, h),
            )
        )
    out.append((task_prompt("list", "", categories), ", ".join(categories[k] for k in present)))
    for _ in range(n - len(out)):
        if rng.random() < 0.5:
            k, ans = present[int(rng.integers(len(present)))], "Yes"
        else:
            absent = [k for k in range(len(categories)) if k not in present]
            k, ans = absent[int(rng.integers(len(absent)))], "No"
        out.append((task_prompt("binary", categories[k], categories), ans))
    return out
