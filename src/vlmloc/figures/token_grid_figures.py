"""The token grid made visible: appendix Fig. 7 (an object mask mapped onto each view's grid of
visual tokens, padded by -2..+2 token layers) and integrated gradients on the same grid.

Every panel is drawn in ORIGINAL-image pixels: a view's cells are where ``View.region`` puts
them (LLaVA's pad-to-square bars, in grey, included; InternVL's tiles side by side, and the
thumbnail over the whole image). The cells a panel marks are the arrays drawn
(``plot_fig7`` returns them, read back from the drawn images), so a test compares them with
``geometry.object_token_indices``.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from ..geometry import mask_grids, object_token_indices, view_planes  # noqa: E402
from ..models.base import ImageLayout, View  # noqa: E402

PANEL_IN = 1.9  # inches per panel
CELL_COLOUR = "magenta"
MASK_COLOUR = "cyan"
PAD_GREY = "0.72"  # outside the image: LLaVA's pad-to-square bars


@dataclass
class GridExample:
    """One sample as the figures draw it."""

    sample_id: str
    label: str  # e.g. "small: mask 0.8% of the image"
    image: np.ndarray  # (H, W, 3) uint8, the original image
    mask: np.ndarray  # (H, W) bool, the object's mask
    layout: ImageLayout  # the model's views of this image


def plane_views(layout: ImageLayout) -> list[tuple[str, list[View]]]:
    """The grids of one image, each drawn in one panel (``geometry.view_planes``): a global view
    alone (InternVL's thumbnail, LLaVA's only view) and all tiles together, with a name."""
    tiled = any(v.kind == "local" for v in layout.views)
    out = []
    for plane in view_planes(layout):
        views = [v for v, _, _ in plane]
        if views[0].kind == "local":
            name = f"{len(views)} tiles ({views[0].rows}x{views[0].cols} each)"
        elif tiled:
            name = f"thumbnail ({views[0].rows}x{views[0].cols})"
        else:
            name = f"{views[0].rows}x{views[0].cols} grid"
        out.append((name, views))
    return out


def _region(views: list[View]) -> tuple[float, float, float, float]:
    return (
        min(v.region[0] for v in views),
        min(v.region[1] for v in views),
        max(v.region[2] for v in views),
        max(v.region[3] for v in views),
    )


def _frame(ax, region):
    x0, y0, x1, y1 = region
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor(PAD_GREY)


def _image(ax, ex: GridExample, alpha: float = 1.0):
    h, w = ex.mask.shape
    ax.imshow(ex.image, extent=(0, w, h, 0), alpha=alpha, interpolation="bilinear", zorder=0)


def _outline(ax, mask: np.ndarray, colour: str = MASK_COLOUR, lw: float = 0.9):
    """The mask's boundary in pixel space."""
    if mask.any() and not mask.all():
        h, w = mask.shape
        ax.contour(
            np.arange(w) + 0.5,
            np.arange(h) + 0.5,
            mask.astype(float),
            levels=[0.5],
            colors=[colour],
            linewidths=lw,
            zorder=5,
        )


def _grid_lines(ax, v: View, colour: str = "0.25", lw: float = 0.25):
    xs, ys = v.cell_edges()
    ax.vlines(xs, ys[0], ys[-1], colors=colour, lw=lw, zorder=3)
    ax.hlines(ys, xs[0], xs[-1], colors=colour, lw=lw, zorder=3)


def _border(ax, v: View, colour: str = "white", lw: float = 1.2):
    x0, y0, x1, y1 = v.region
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=colour, lw=lw, zorder=4))


def _cells(ax, v: View, grid: np.ndarray, gid: str):
    """The view's selected cells, as an RGBA image over the view's region (transparent where
    not selected)."""
    rgba = np.zeros((*grid.shape, 4))
    rgba[grid] = (*to_rgba(CELL_COLOUR)[:3], 0.62)
    x0, y0, x1, y1 = v.region
    return ax.imshow(rgba, extent=(x0, x1, y1, y0), interpolation="nearest", zorder=2, gid=gid)


def _count_text(ax, text: str):
    ax.text(
        0.02,
        0.02,
        text,
        transform=ax.transAxes,
        fontsize=6.5,
        va="bottom",
        bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1},
        zorder=6,
    )


def _tokens(n: int) -> str:
    return f"{n} token" if n == 1 else f"{n} tokens"


def _image_panel(ax, ex: GridExample, title: str | None):
    h, w = ex.mask.shape
    _image(ax, ex)
    overlay = np.zeros((h, w, 4))
    overlay[ex.mask] = (*to_rgba(MASK_COLOUR)[:3], 0.45)
    ax.imshow(overlay, extent=(0, w, h, 0), interpolation="nearest", zorder=1)
    _outline(ax, ex.mask)
    for v in ex.layout.views:
        if v.kind == "local":  # where InternVL cuts its tiles
            _border(ax, v, "white", 0.9)
    _frame(ax, (0, 0, w, h))
    ax.set_ylabel(f"{ex.sample_id}\n{ex.label}\n{w}x{h} px", fontsize=7)
    if title:
        ax.set_title(title, fontsize=8)


def _empty(png: str, pdf: str, text: str):
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    fig.savefig(png, dpi=150)
    fig.savefig(pdf)
    plt.close(fig)
    return fig


def plot_fig7(model: str, examples: list[GridExample], paddings, png: str, pdf: str):
    """Appendix Fig. 7 for one model: per sample, the image with its object mask (pixel space),
    then per padding the tokens it selects on each grid (a row per grid: InternVL's thumbnail and
    its tiles). Returns (figure, cells): cells[(sample_id, padding)] = the image-token indices
    marked in the drawn panels (read back from the drawn images), sorted."""
    paddings = list(paddings)
    rows = [(ex, name, views) for ex in examples for name, views in plane_views(ex.layout)]
    if not rows:
        return _empty(png, pdf, f"{model}: no samples in the probing subset"), {}
    ncols = 1 + len(paddings)
    fig = plt.figure(figsize=(PANEL_IN * ncols, PANEL_IN * len(rows) + 0.6), layout="constrained")
    gs = fig.add_gridspec(len(rows), ncols)
    drawn = []
    r = 0
    for ex in examples:
        planes = plane_views(ex.layout)
        _image_panel(
            fig.add_subplot(gs[r : r + len(planes), 0]),
            ex,
            "image + object mask" if r == 0 else None,
        )
        grids = {p: mask_grids(ex.layout, ex.mask, p) for p in paddings}
        for i, (name, views) in enumerate(planes):
            for j, p in enumerate(paddings):
                ax = fig.add_subplot(gs[r + i, 1 + j])
                _image(ax, ex, alpha=0.4)
                marked = []
                for v in views:
                    im = _cells(ax, v, grids[p][v.name], f"fig7:{ex.sample_id}:{p:+d}:{v.name}")
                    drawn.append((ex.sample_id, p, v, im))
                    marked.append(v.offset + np.flatnonzero(grids[p][v.name].ravel()))
                    _grid_lines(ax, v)
                    if v.kind == "local":
                        _border(ax, v, "black", 0.9)
                _outline(ax, ex.mask)
                _frame(ax, _region(views))
                _count_text(ax, _tokens(len(np.concatenate(marked))))
                if r + i == 0:
                    ax.set_title(f"padding {p:+d}" if p else "padding 0 (the mask)", fontsize=8)
                if j == 0:
                    ax.set_ylabel(name, fontsize=7)
        r += len(planes)
    fig.suptitle(
        f"{model}: the object mask on the token grid (appendix Fig. 7)\nmagenta: the tokens "
        "selected (any pixel of the mask in the cell, then grown / shrunk by whole rings of "
        "tokens); cyan: the mask",
        fontsize=8,
    )
    fig.savefig(png, dpi=150)
    fig.savefig(pdf)
    plt.close(fig)
    cells: dict[tuple[str, int], list[np.ndarray]] = {}
    for sid, p, v, im in drawn:
        selected = np.asarray(im.get_array())[..., 3] > 0
        cells.setdefault((sid, p), []).append(v.offset + np.flatnonzero(selected.ravel()))
    return fig, {k: np.sort(np.concatenate(v)) for k, v in cells.items()}


def cell_outline(v: View, grid: np.ndarray) -> list[list[tuple[float, float]]]:
    """The boundary of a view's selected cells: every cell side between a selected cell and one
    that is not (or the grid's edge), as pixel-space segments."""
    xs, ys = v.cell_edges()
    padded = np.pad(grid, 1)
    segs = []
    for r, c in zip(*np.nonzero(grid), strict=True):
        x0, x1, y0, y1 = xs[c], xs[c + 1], ys[r], ys[r + 1]
        if not padded[r, c + 1]:  # above
            segs.append([(x0, y0), (x1, y0)])
        if not padded[r + 2, c + 1]:  # below
            segs.append([(x0, y1), (x1, y1)])
        if not padded[r + 1, c]:  # left
            segs.append([(x0, y0), (x0, y1)])
        if not padded[r + 1, c + 2]:  # right
            segs.append([(x1, y0), (x1, y1)])
    return segs


def plot_ig_grid(
    model: str,
    task: str,
    examples: list[GridExample],
    importances: dict[str, np.ndarray],
    top_indices,
    png: str,
    pdf: str,
):
    """Integrated gradients on the token grid, one model and task: per sample, the image with its
    mask, then per grid the importance of each visual token (divided by the sample's largest),
    the object's tokens (padding 0) outlined, and the top-k tokens by importance (k = the
    object's token count, all views together; ``top_indices`` is the experiments' ranking)
    marked. Returns (figure, drawn): drawn[sample_id] = {"object", "top", "k"}."""
    if not examples:
        return _empty(png, pdf, f"{model}, {task}: no samples in the probing subset"), {}
    nplanes = max(len(plane_views(ex.layout)) for ex in examples)
    fig, axes = plt.subplots(
        len(examples),
        1 + nplanes,
        figsize=(
            max(7.0, PANEL_IN * 1.3 * (1 + nplanes) + 1.0),
            PANEL_IN * 1.4 * len(examples) + 0.7,
        ),
        squeeze=False,
        layout="constrained",
    )
    drawn, heat = {}, None
    for i, ex in enumerate(examples):
        _image_panel(axes[i, 0], ex, "image + object mask" if i == 0 else None)
        planes = plane_views(ex.layout)
        for ax in axes[i, 1 + len(planes) :]:
            ax.set_axis_off()
        imp = importances.get(ex.sample_id)
        if imp is None:
            for ax in axes[i, 1 : 1 + len(planes)]:
                ax.text(0.5, 0.5, "no importances stored", ha="center", transform=ax.transAxes)
                ax.set_axis_off()
            continue
        if len(imp) != ex.layout.n_tokens:
            raise ValueError(
                f"{model} {ex.sample_id}: {len(imp)} importances for {ex.layout.n_tokens} tokens"
            )
        obj = object_token_indices(ex.layout, ex.mask, 0)
        k = len(obj)
        top = np.sort(np.asarray(top_indices(imp, k), dtype=int))
        drawn[ex.sample_id] = {"object": obj, "top": top, "k": k}
        scale = imp.max() if imp.max() > 0 else 1.0
        grid0 = mask_grids(ex.layout, ex.mask, 0)
        for ax, (name, views) in zip(axes[i, 1:], planes, strict=False):
            segs, centres = [], []
            for v in views:
                values = imp[v.offset : v.offset + v.n_tokens].reshape(v.rows, v.cols) / scale
                x0, y0, x1, y1 = v.region
                heat = ax.imshow(
                    values,
                    extent=(x0, x1, y1, y0),
                    cmap="viridis",
                    vmin=0,
                    vmax=1,
                    interpolation="nearest",
                    zorder=1,
                    gid=f"ig:{ex.sample_id}:{v.name}",
                )
                segs += cell_outline(v, grid0[v.name])
                xs, ys = v.cell_edges()
                mine = top[(top >= v.offset) & (top < v.offset + v.n_tokens)] - v.offset
                centres += [
                    ((xs[c] + xs[c + 1]) / 2, (ys[r] + ys[r + 1]) / 2)
                    for r, c in zip(*np.divmod(mine, v.cols), strict=True)
                ]
                if v.kind == "local":
                    _border(ax, v, "0.9", 0.8)
            ax.add_collection(
                LineCollection(
                    segs,
                    colors="white",
                    linewidths=1.3,
                    zorder=3,
                    gid=f"object:{ex.sample_id}:{name}",
                )
            )
            if centres:
                cx, cy = zip(*centres, strict=True)
                ax.scatter(
                    cx,
                    cy,
                    marker="x",
                    s=14,
                    linewidths=1.0,
                    c="tab:red",
                    zorder=4,
                    gid=f"top:{ex.sample_id}:{name}",
                )
            _frame(ax, _region(views))
            in_plane = np.concatenate([v.offset + np.arange(v.n_tokens) for v in views])
            hits = int(np.isin(top, obj).sum())
            here = f"{int(np.isin(top, in_plane).sum())} here, " if len(planes) > 1 else ""
            _count_text(ax, f"top-{k}: {here}{hits} in the object")
            ax.set_title(name, fontsize=7.5)
    if heat is not None:
        fig.colorbar(heat, ax=axes[:, 1:], shrink=0.6, label="IG importance / the sample's largest")
    fig.suptitle(
        f"{model}, {task}: integrated gradients on the token grid\nwhite: the object's tokens "
        "(padding 0); red x: the top-k tokens by importance, k = the object's token count",
        fontsize=8,
    )
    fig.savefig(png, dpi=150)
    fig.savefig(pdf)
    plt.close(fig)
    return fig, drawn
