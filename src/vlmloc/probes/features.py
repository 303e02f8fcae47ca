"""Hidden states of every visual token at every stage of a VLM, for positional probes (paper
sec. 3.2), taken while the model runs on its usual prompt and never stored.

Sites, each reached through the adapter (never by module paths here):

- ``vision.<l>``: the output of vision-backbone block ``l`` (``adapter.vision_layers``) at the
  patch tokens of every view (CLS dropped). Positions are on the BACKBONE's patch grid of the
  view: LLaVA 24 x 24 (the same grid as the LLM's tokens); InternVL 32 x 32 per 448 px view,
  before the pixel shuffle, so patch (R, C) is a part of LLM token (R // 2, C // 2).
- ``projector``: the projector's output (``adapter.projector``): the visual tokens at the LLM
  input, on the LLM's grid (LLaVA 24 x 24, InternVL 16 x 16 per view).
- ``llm.<l>``: the output of decoder layer ``l`` (``adapter.decoder_layers``) at the visual
  tokens' sequence positions, on the LLM's grid.

Every token's (view, row, col) comes from ``adapter.layout``: the LLM grid is the layout's, and
the backbone grid refines each view of it by ``adapter.vision_merge``.

The prompt is the adapter's chat prompt (system prompt + image + ``task_text``). With causal
attention nothing after the last visual token reaches the visual tokens, so only the image
prefix (system prompt and visual tokens, ``adapter.image_prefix_length``) runs: the states are
those of the full prompt, whatever the task text (tested against ``output_hidden_states``).
One forward pass per batch serves every site (the vision tower runs inside it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..images import image_size, open_image
from ..models.base import Adapter, ImageLayout, pad_rows

STAGES = ("vision", "projector", "llm")


@dataclass(frozen=True)
class Site:
    name: str  # "vision.3", "projector", "llm.12"
    stage: str  # one of STAGES
    layer: int  # block index within its stage (0 for the projector)

    @property
    def grid(self) -> str:
        """Which position grid labels this site's tokens: "vision" (the backbone's patch grid)
        or "llm" (the layout's grid, shared by the projector and the LLM)."""
        return "vision" if self.stage == "vision" else "llm"


def sites(adapter: Adapter, stages: Sequence[str] = STAGES) -> list[Site]:
    """Every probe site of the model, in processing order."""
    out = []
    if "vision" in stages:
        out += [Site(f"vision.{i}", "vision", i) for i in range(len(adapter.vision_layers))]
    if "projector" in stages:
        out.append(Site("projector", "projector", 0))
    if "llm" in stages:
        out += [Site(f"llm.{i}", "llm", i) for i in range(adapter.num_layers)]
    return out


def select_sites(all_sites: Sequence[Site], names: Iterable[str] | None) -> list[Site]:
    if names is None:
        return list(all_sites)
    wanted = list(names)
    known = {s.name: s for s in all_sites}
    missing = [n for n in wanted if n not in known]
    if missing:
        raise ValueError(f"unknown probe sites {missing}; known: {list(known)}")
    return [s for s in all_sites if s.name in set(wanted)]


@dataclass
class TokenLabels:
    """One entry per token, in the order of the site's features."""

    image: torch.Tensor  # index of the image in the caller's list
    view: torch.Tensor  # index of the view in its image's layout
    kind: torch.Tensor  # 0 = global view, 1 = local view (tile)
    row: torch.Tensor
    col: torch.Tensor
    rows: int  # grid size (classes per axis) of every view at this grid
    cols: int

    def __len__(self) -> int:
        return len(self.row)

    def select(self, keep: torch.Tensor) -> TokenLabels:
        return TokenLabels(
            self.image[keep],
            self.view[keep],
            self.kind[keep],
            self.row[keep],
            self.col[keep],
            self.rows,
            self.cols,
        )


def grid_labels(
    layouts: Sequence[ImageLayout],
    image_ids: Sequence[int],
    refine: int = 1,
    grid: tuple[int, int] | None = None,
) -> TokenLabels:
    """Labels of the visual tokens of ``layouts`` (image after image, view after view, row-major),
    on each view's grid refined ``refine`` times along each axis (the backbone's patch grid).
    Every view has one grid shape, the classes per axis; or, for a family whose grid follows the
    image's size (``Adapter.dynamic_resolution``), ``grid`` (rows, cols on the LLM's grid, at
    least every view's) gives the classes, and a token's class is its row and column."""
    image, view, kind, row, col = [], [], [], [], []
    shapes = set()
    for img, lay in zip(image_ids, layouts, strict=True):
        for v_index, v in enumerate(lay.views):
            rows, cols = v.rows * refine, v.cols * refine
            shapes.add((rows, cols))
            r, c = np.divmod(np.arange(rows * cols), cols)
            image.append(np.full(rows * cols, img))
            view.append(np.full(rows * cols, v_index))
            kind.append(np.full(rows * cols, 0 if v.kind == "global" else 1))
            row.append(r)
            col.append(c)
    if grid is not None:
        rows, cols = grid[0] * refine, grid[1] * refine
        if any(r > rows or c > cols for r, c in shapes):
            raise ValueError(
                f"a view's grid {sorted(shapes)[-1]} exceeds the probes' classes ({rows}, {cols})"
            )
    elif len(shapes) != 1:
        raise ValueError(f"probes need one grid shape for every view, got {sorted(shapes)}")
    else:
        (rows, cols) = shapes.pop()
    t = [torch.from_numpy(np.concatenate(x)).long() for x in (image, view, kind, row, col)]
    return TokenLabels(*t, rows=rows, cols=cols)


@dataclass
class StageBatch:
    """One batch of images: features per site (tokens, width) on the model's device, in the
    model's dtype, and the token labels of each grid ("vision", "llm")."""

    image_ids: list[int]
    features: dict[str, torch.Tensor]
    labels: dict[str, TokenLabels]
    sites: dict[str, Site] = field(default_factory=dict)

    def labels_of(self, site: str) -> TokenLabels:
        return self.labels[self.sites[site].grid]


def largest_grid(adapter: Adapter, images: Sequence) -> tuple[int, int]:
    """(rows, cols) of the largest views of ``images`` (PIL images or paths, read for their size
    only) on the LLM's grid: the probes' classes per axis where the grids differ."""
    rows = cols = 0
    for im in images:
        size = image_size(im)
        for v in adapter.layout(*size).views:
            rows, cols = max(rows, v.rows), max(cols, v.cols)
    return rows, cols


def prefix_inputs(adapter: Adapter, layouts: Sequence[ImageLayout], task_text: str):
    """Left-padded ids and mask of the image prefixes (system prompt and visual tokens) of the
    adapter's prompt, and each row's visual-token positions."""
    prompts = [adapter.prompt(task_text, lay.n_tokens) for lay in layouts]
    rows = adapter.tokenizer(prompts, add_special_tokens=True)["input_ids"]
    heads = [r[: adapter.image_prefix_length(r)] for r in rows]
    ids, mask = pad_rows(heads, adapter.tokenizer.pad_token_id)
    positions = [torch.nonzero(row == adapter.image_token_id).flatten() for row in ids]
    for p, lay in zip(positions, layouts, strict=True):
        if len(p) != lay.n_tokens:
            raise RuntimeError(
                f"{len(p)} image tokens in the prompt, layout expects {lay.n_tokens}"
            )
    return ids, mask, positions


@contextlib.contextmanager
def capture(adapter: Adapter, wanted: Sequence[Site], store: dict[str, torch.Tensor]):
    """Forward hooks writing each wanted site's raw output into ``store``; always removed."""
    handles = []

    def keep(name, site):
        def hook(_module, _inputs, output):
            store[name] = site.read(output).detach()

        return hook

    try:
        for s in wanted:  # the probe sites are the adapter's sites of the same names
            site = adapter.site(s.name)
            handles.append(site.module.register_forward_hook(keep(s.name, site)))
        yield store
    finally:
        for h in handles:
            h.remove()


@torch.inference_mode()
def stage_features(
    adapter: Adapter,
    images: Sequence,
    task_text: str,
    batch_size: int = 8,
    site_names: Iterable[str] | None = None,
    pixels=None,
    grid: tuple[int, int] | None = None,
) -> Iterator[StageBatch]:
    """Per batch of ``images`` (PIL images or paths), the visual tokens' hidden states at every
    site (or ``site_names``), from one forward pass of the image prefix of the adapter's prompt
    with ``task_text``. ``pixels(i)`` may give image i's (width, height) and preprocessed views
    (``adapter.pixel_values``), to spare decoding it again. ``grid``: the classes per axis when
    the grids differ (``grid_labels``)."""
    wanted = select_sites(sites(adapter), site_names)
    by_name = {s.name: s for s in wanted}
    refine = adapter.vision_merge
    for start in range(0, len(images), batch_size):
        ids_ = list(range(start, min(start + batch_size, len(images))))
        if pixels is not None:
            prepared = [pixels(i) for i in ids_]
        else:
            opened = [open_image(images[i]) for i in ids_]
            prepared = [(im.size, adapter.pixel_values(im)) for im in opened]
        layouts = [adapter.layout(*wh) for wh, _ in prepared]
        ids, mask, positions = prefix_inputs(adapter, layouts, task_text)
        dev = adapter.device
        inputs = {
            "input_ids": ids.to(dev),
            "attention_mask": mask.to(dev),
            **adapter.pixel_inputs([p.to(dev) for _, p in prepared], layouts),
        }
        inputs["position_ids"] = adapter.position_ids(
            inputs["input_ids"], inputs["attention_mask"], layouts
        )
        raw: dict[str, torch.Tensor] = {}
        with capture(adapter, wanted, raw):
            adapter.model(**inputs, use_cache=False, logits_to_keep=1)
        feats = {}
        for name, s in by_name.items():
            x = raw[name]
            if (
                s.stage == "vision"
            ):  # each view's patches row-major (LLaVA's, InternVL's: CLS dropped)
                feats[name] = adapter.vision_tokens(x, layouts)
            elif s.stage == "projector":  # (views or images, tokens, width), sequence order
                feats[name] = x.reshape(-1, x.shape[-1])
            else:  # (batch, sequence, width): the visual tokens' positions, row after row
                feats[name] = torch.cat([x[b, p.to(x.device)] for b, p in enumerate(positions)])
        labels = {
            "llm": grid_labels(layouts, ids_, grid=grid),
            "vision": grid_labels(layouts, ids_, refine, grid),
        }
        for name, x in feats.items():
            if x.shape[0] != len(labels[by_name[name].grid]):
                raise RuntimeError(
                    f"{name}: {x.shape[0]} tokens, labels for {len(labels[by_name[name].grid])}"
                )
        yield StageBatch(ids_, feats, labels, dict(by_name))


VIEW_KINDS = {"all": (0, 1), "global": (0,), "local": (1,)}


def select_views(batch: StageBatch, views: str = "all") -> StageBatch:
    """Only the tokens of the global view ("global"), of the tiles ("local") or all ("all").
    LLaVA has one view, which is global."""
    if views not in VIEW_KINDS:
        raise ValueError(f"views must be one of {list(VIEW_KINDS)}, got {views!r}")
    if views == "all":
        return batch
    keep = {
        g: torch.isin(lab.kind, torch.tensor(VIEW_KINDS[views])) for g, lab in batch.labels.items()
    }
    labels = {g: lab.select(keep[g]) for g, lab in batch.labels.items()}
    feats = {n: x[keep[batch.sites[n].grid].to(x.device)] for n, x in batch.features.items()}
    return StageBatch(batch.image_ids, feats, labels, batch.sites)
