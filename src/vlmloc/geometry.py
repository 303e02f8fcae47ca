"""Token geometry: object masks mapped onto each view's grid of visual tokens (appendix Fig. 7).

A token is selected if ANY pixel of the mask overlaps its cell (cells are in original-image
pixels, see ``View``). Padding grows (+p) or shrinks (-p) the selection by p token layers on each
view's own grid (8-neighbourhood, i.e. whole rings of tokens). When shrinking, the grid border
counts as inside the object, because a view's edge is not an object boundary (a tile's object
continues in the next tile).
"""

from __future__ import annotations

import math

import numpy as np

from .models.base import ImageLayout, View


def _view_grid(view: View, mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    integral = np.zeros((h + 1, w + 1), dtype=np.int64)
    integral[1:, 1:] = mask.astype(np.int64).cumsum(0).cumsum(1)
    xs, ys = view.cell_edges()
    # pixel p spans [p, p+1): the pixels overlapping a cell [a, b) are floor(a) .. ceil(b)-1
    x_lo = np.clip(np.floor(xs[:-1]).astype(int), 0, w)
    x_hi = np.clip(np.array([math.ceil(v) for v in xs[1:]]), 0, w)
    y_lo = np.clip(np.floor(ys[:-1]).astype(int), 0, h)
    y_hi = np.clip(np.array([math.ceil(v) for v in ys[1:]]), 0, h)
    total = (
        integral[y_hi[:, None], x_hi[None, :]]
        - integral[y_lo[:, None], x_hi[None, :]]
        - integral[y_hi[:, None], x_lo[None, :]]
        + integral[y_lo[:, None], x_lo[None, :]]
    )
    return total > 0


def _shift_or(grid: np.ndarray, fill: bool) -> np.ndarray:
    """One step of 3x3 dilation (fill=False) or, applied to the complement, erosion."""
    padded = np.pad(grid, 1, constant_values=fill)
    out = np.zeros_like(grid)
    r, c = grid.shape
    for dy in range(3):
        for dx in range(3):
            out |= padded[dy : dy + r, dx : dx + c]
    return out


def pad_grid(grid: np.ndarray, padding: int) -> np.ndarray:
    out = grid.copy()
    for _ in range(abs(padding)):
        out = _shift_or(out, False) if padding > 0 else ~_shift_or(~out, False)
    return out


def mask_grids(layout: ImageLayout, mask: np.ndarray, padding: int = 0) -> dict[str, np.ndarray]:
    """Per view name, a (rows, cols) boolean grid of the tokens the mask selects."""
    if mask.shape != (layout.height, layout.width):
        raise ValueError(f"mask {mask.shape} does not match the image ({layout.height}, {layout.width})")
    return {v.name: pad_grid(_view_grid(v, mask), padding) for v in layout.views}


def grids_to_indices(layout: ImageLayout, grids: dict[str, np.ndarray], views: tuple[str, ...] | None = None) -> np.ndarray:
    """Image-token indices (0..n_tokens-1, sequence order) of the selected cells; ``views``
    restricts to some views by name or kind ("global" / "local")."""
    out = []
    for v in layout.views:
        if views is not None and v.name not in views and v.kind not in views:
            continue
        out.append(v.offset + np.flatnonzero(grids[v.name].ravel()))
    return np.concatenate(out) if out else np.zeros(0, dtype=int)


def object_token_indices(layout: ImageLayout, mask: np.ndarray, padding: int = 0, views: tuple[str, ...] | None = None) -> np.ndarray:
    return grids_to_indices(layout, mask_grids(layout, mask, padding), views)


def scale_view(layout: ImageLayout, grid: str = "global") -> View:
    """The view whose cells measure a box's growth: ``global`` = the view over the whole image
    (LLaVA's only view, InternVL's thumbnail); ``finest`` = the view with the smallest cells (an
    InternVL tile when there are tiles)."""
    if grid == "global":
        return next(v for v in layout.views if v.kind == "global")
    if grid == "finest":
        return min(layout.views, key=lambda v: (v.region[2] - v.region[0]) / v.cols)
    raise ValueError(f"scale grid must be 'global' or 'finest', not {grid!r}")


def scaled_box(box: tuple[float, float, float, float], layout: ImageLayout, s: int, grid: str = "global") -> tuple[float, float, float, float]:
    """A box (x1, y1, x2, y2, original-image pixels) grown by ``s`` token layers: ``s`` cells of
    the ``grid`` view on each side (a cell's width left and right, its height above and below),
    clipped to the image. s = 0 clips only."""
    v = scale_view(layout, grid)
    cw, ch = (v.region[2] - v.region[0]) / v.cols, (v.region[3] - v.region[1]) / v.rows
    x1, y1, x2, y2 = box
    return (max(0.0, x1 - s * cw), max(0.0, y1 - s * ch), min(float(layout.width), x2 + s * cw), min(float(layout.height), y2 + s * ch))


def cell_boxes(view: View, grid: np.ndarray) -> list[list[float]]:
    """Pixel boxes [x0, y0, x1, y1] of a view's selected cells (for drawing them)."""
    xs, ys = view.cell_edges()
    return [[float(xs[c]), float(ys[r]), float(xs[c + 1]), float(ys[r + 1])] for r, c in zip(*np.nonzero(grid), strict=True)]
