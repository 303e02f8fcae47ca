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
        raise ValueError(
            f"mask {mask.shape} does not match the image ({layout.height}, {layout.width})"
        )
    return {v.name: pad_grid(_view_grid(v, mask), padding) for v in layout.views}


def grids_to_indices(
    layout: ImageLayout, grids: dict[str, np.ndarray], views: tuple[str, ...] | None = None
) -> np.ndarray:
    """Image-token indices (0..n_tokens-1, sequence order) of the selected cells; ``views``
    restricts to some views by name or kind ("global" / "local")."""
    out = []
    for v in layout.views:
        if views is not None and v.name not in views and v.kind not in views:
            continue
        out.append(v.offset + np.flatnonzero(grids[v.name].ravel()))
    return np.concatenate(out) if out else np.zeros(0, dtype=int)


def object_token_indices(
    layout: ImageLayout, mask: np.ndarray, padding: int = 0, views: tuple[str, ...] | None = None
) -> np.ndarray:
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


def scaled_box(
    box: tuple[float, float, float, float], layout: ImageLayout, s: int, grid: str = "global"
) -> tuple[float, float, float, float]:
    """A box (x1, y1, x2, y2, original-image pixels) grown by ``s`` token layers: ``s`` cells of
    the ``grid`` view on each side (a cell's width left and right, its height above and below),
    clipped to the image. s = 0 clips only."""
    v = scale_view(layout, grid)
    cw, ch = (v.region[2] - v.region[0]) / v.cols, (v.region[3] - v.region[1]) / v.rows
    x1, y1, x2, y2 = box
    return (
        max(0.0, x1 - s * cw),
        max(0.0, y1 - s * ch),
        min(float(layout.width), x2 + s * cw),
        min(float(layout.height), y2 + s * ch),
    )


def cell_boxes(view: View, grid: np.ndarray) -> list[list[float]]:
    """Pixel boxes [x0, y0, x1, y1] of a view's selected cells (for drawing them)."""
    xs, ys = view.cell_edges()
    return [
        [float(xs[c]), float(ys[r]), float(xs[c + 1]), float(ys[r + 1])]
        for r, c in zip(*np.nonzero(grid), strict=True)
    ]


def image_cells(view: View, width: int, height: int) -> np.ndarray:
    """A view's cells that cover some pixel of the image (LLaVA's pad-to-square bars cover none)."""
    return _view_grid(view, np.ones((height, width), dtype=bool))


def translations(shape: np.ndarray, forbidden: np.ndarray) -> list[tuple[int, int]]:
    """Every shift (dy, dx) that moves the selected cells of ``shape`` (a boolean grid) to cells
    of the same grid none of which is ``forbidden``; the zero shift included if it qualifies."""
    rr, cc = np.nonzero(shape)
    if not len(rr):
        return []
    rows, cols = shape.shape
    dy0, dx0 = -int(rr.min()), -int(cc.min())
    ny, nx = rows - int(rr.max()) - dy0, cols - int(cc.max()) - dx0
    ok = np.ones((ny, nx), dtype=bool)
    for r, c in zip(rr, cc, strict=True):  # shift (dy, dx) puts cell (r, c) on (r + dy, c + dx)
        ok &= ~forbidden[r + dy0 : r + dy0 + ny, c + dx0 : c + dx0 + nx]
    return [(int(a) + dy0, int(b) + dx0) for a, b in zip(*np.nonzero(ok), strict=True)]


def view_planes(layout: ImageLayout) -> list[list[tuple[View, int, int]]]:
    """The grids a translation moves within: each global view alone, and all local views (InternVL's
    tiles, which abut and share one cell size) stitched into one finer grid over the image. Each
    plane lists (view, first row, first column) of its views in the stitched grid."""
    planes = [[(v, 0, 0)] for v in layout.views if v.kind != "local"]
    local = [v for v in layout.views if v.kind == "local"]
    if local:
        planes.append(
            [
                (
                    v,
                    round(v.region[1] / (v.region[3] - v.region[1])) * v.rows,
                    round(v.region[0] / (v.region[2] - v.region[0])) * v.cols,
                )
                for v in local
            ]
        )
    return planes


def _stitch(plane: list[tuple[View, int, int]], grids: dict[str, np.ndarray]) -> np.ndarray:
    rows = max(r0 + v.rows for v, r0, _ in plane)
    cols = max(c0 + v.cols for v, _, c0 in plane)
    out = np.zeros((rows, cols), dtype=bool)
    for v, r0, c0 in plane:
        out[r0 : r0 + v.rows, c0 : c0 + v.cols] = grids[v.name]
    return out


def _plane_indices(
    plane: list[tuple[View, int, int]], rr: np.ndarray, cc: np.ndarray
) -> np.ndarray:
    """Token indices of the stitched grid's cells (rr, cc)."""
    out = np.full(len(rr), -1, dtype=int)
    for v, r0, c0 in plane:
        inside = (rr >= r0) & (rr < r0 + v.rows) & (cc >= c0) & (cc < c0 + v.cols)
        out[inside] = v.offset + (rr[inside] - r0) * v.cols + (cc[inside] - c0)
    if (out < 0).any():
        raise ValueError("a stitched cell lies in no view")
    return out


def object_translations(
    layout: ImageLayout, mask: np.ndarray, padding: int = 1, others: np.ndarray | None = None
) -> tuple[list[tuple[list, np.ndarray, list]], str]:
    """Per grid the object covers (``view_planes``: a global view, or InternVL's stitched tiles):
    the plane, the object's cells on it, and every shift that moves those cells to cells that
    cover image pixels only, no cell of the object padded by ``padding`` token layers (padded on
    the stitched grid, so across tile borders) and no cell of ``others`` (the image's other
    objects, a boolean (H, W) mask). Returns (planes, "") or, where some grid has no allowed
    shift, ([], why)."""
    obj = {v.name: _view_grid(v, mask) for v in layout.views}
    inside = {v.name: image_cells(v, layout.width, layout.height) for v in layout.views}
    other = (
        {v.name: _view_grid(v, others) for v in layout.views}
        if others is not None and others.any()
        else None
    )
    out = []
    for plane in view_planes(layout):
        grid = _stitch(plane, obj)
        if not grid.any():
            continue
        forbidden = pad_grid(grid, padding) | ~_stitch(plane, inside)
        if other is not None:
            forbidden |= _stitch(plane, other)
        shifts = translations(grid, forbidden)
        if not shifts:
            where = plane[0][0].name if len(plane) == 1 else "the tiles"
            return (
                [],
                f"no place for the object's {int(grid.sum())} tokens in {where} ({grid.shape[0]}x{grid.shape[1]})",
            )
        out.append((plane, grid, shifts))
    return out, ""


def draw_translation(
    choices: list[tuple[list, np.ndarray, list]], rng: np.random.Generator
) -> np.ndarray:
    """The object's tokens moved by one shift per grid, drawn uniformly among the allowed ones
    (``object_translations``); each grid's selection keeps its shape (same relative offsets)."""
    out = []
    for plane, grid, shifts in choices:
        dy, dx = shifts[int(rng.integers(len(shifts)))]
        rr, cc = np.nonzero(grid)
        out.append(_plane_indices(plane, rr + dy, cc + dx))
    return np.sort(np.concatenate(out)) if out else np.zeros(0, dtype=int)


def random_outside_indices(
    layout: ImageLayout, mask: np.ndarray, k: int, rng: np.random.Generator, padding: int = 1
) -> tuple[np.ndarray, str]:
    """``k`` distinct tokens drawn uniformly among the tokens that cover image pixels and lie
    outside the object mask padded by ``padding`` token layers (every view). Returns (indices, "")
    or, where fewer than ``k`` tokens are allowed, (empty, why)."""
    grids = mask_grids(layout, mask, padding)
    allowed = {
        v.name: image_cells(v, layout.width, layout.height) & ~grids[v.name] for v in layout.views
    }
    pool = grids_to_indices(layout, allowed)
    if len(pool) < k:
        return np.zeros(
            0, dtype=int
        ), f"{len(pool)} tokens outside the object (+{padding}), {k} needed"
    return np.sort(rng.choice(pool, size=int(k), replace=False)), ""
