"""Qwen2.5-VL (7B): a window-attention ViT (14 px patches) + 2 x 2 patch merger + Qwen2, with M-RoPE.

What sets it apart from the other two families, each answered here and nowhere else:

- Native dynamic resolution, no tiles: the image is stretched to the multiple of 28 px per side
  closest to its size with its pixel count within the processor's ``min_pixels`` .. ``max_pixels``
  (``smart_resize``), cut into 14 px patches, and 2 x 2 patches merge into one LLM token. So the
  layout is ONE view whose grid is rows x cols = (H' / 28) x (W' / 28) of the resized image,
  row-major, over the whole original image (no padding). ``pixel_values`` gives the resized,
  normalised image (1, 3, H', W'); ``pixel_inputs`` turns a batch of them into the processor's
  flattened patches and ``image_grid_thw``.
- M-RoPE: position ids are 3-D (temporal, height, width) and come from the model's
  ``get_rope_index`` (a visual token at (r, c) of an image whose first token is at text position
  p gets (p, p + r, p + c); text after the image continues at p + max(rows, cols)). They are
  given as generate gives them: (4, batch, tokens), the 1-D text positions first.
- The vision tower attends within windows of 4 x 4 LLM tokens (112 px) in most blocks and
  reorders its tokens window by window; its merger's output is put back into row-major order
  after the merger, so the projector SITE is the tower's ``pooler_output`` (sequence order), and
  ``vision_tokens`` undoes the window order of a block's output for the probes.
- Boxes are JSON ``{"bbox_2d": [x1, y1, x2, y2]}`` in absolute pixels of the RESIZED image
  (H' x W'); the parser and the gold writer map them to and from original-image pixels.

The chat template is the checkpoint's (Qwen's ChatML with its default system prompt).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from ..tasks import ParsedBox, parse_box_numbers
from .base import Adapter, ImageLayout, LazyModule, Site, View

torch = LazyModule(
    "torch"
)  # on first use: the workflow reads this class while planning, without torch

QWEN_SYSTEM = "You are a helpful assistant."
# the processor's defaults, as Qwen2.5-VL-7B-Instruct's preprocessor_config.json has them
# (min_pixels 3136, max_pixels 12845056, patch_size 14, merge_size 2, temporal_patch_size 2,
# image_mean / image_std = transformers' OPENAI_CLIP_MEAN / _STD); used where a checkpoint's own
# preprocessor_config lacks them
MIN_PIXELS, MAX_PIXELS = 56 * 56, 28 * 28 * 16384
PATCH_SIZE, MERGE_SIZE, TEMPORAL_PATCH_SIZE = 14, 2, 2
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_BBOX = re.compile(r'"bbox_2d"\s*:\s*\[(.*?)\]', re.S)


def smart_resize(
    height: int,
    width: int,
    factor: int = 28,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
) -> tuple[int, int]:
    """(height, width) the processor resizes an image to: multiples of ``factor`` closest to the
    image's sides, scaled to keep the pixel count within min .. max (transformers' Qwen2-VL
    ``smart_resize``, which tests/test_qwen2_5_vl.py compares against)."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(
            f"absolute aspect ratio must be smaller than 200, got {max(height, width) / min(height, width)}"
        )
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar, w_bar = (
            math.ceil(height * beta / factor) * factor,
            math.ceil(width * beta / factor) * factor,
        )
    return h_bar, w_bar


def _pixels_option(preprocessor: dict, key: str, size_key: str, default: int) -> int:
    """min/max pixels as older (``min_pixels``) and newer (``size.shortest_edge``) configs write them."""
    if preprocessor.get(key) is not None:
        return int(preprocessor[key])
    return int((preprocessor.get("size") or {}).get(size_key) or default)


class Qwen2_5_VLAdapter(Adapter):
    family = "qwen2_5_vl"
    model_class_name = "Qwen2_5_VLForConditionalGeneration"
    system_prompt = QWEN_SYSTEM
    independent_views = False  # window attention over the whole image's patches: no per-view cache
    dynamic_resolution = True  # each image's grid follows its size
    vision_prefix_tokens = 0  # no CLS
    hub_image_mean, hub_image_std = CLIP_MEAN, CLIP_STD

    # ---- resolution ----------------------------------------------------------------------------
    @property
    def patch_size(self) -> int:
        return int(self.preprocessor.get("patch_size", PATCH_SIZE))

    @property
    def merge_size(self) -> int:
        return int(self.preprocessor.get("merge_size", MERGE_SIZE))

    @property
    def temporal_patch_size(self) -> int:
        return int(self.preprocessor.get("temporal_patch_size", TEMPORAL_PATCH_SIZE))

    @property
    def min_pixels(self) -> int:
        return _pixels_option(self.preprocessor, "min_pixels", "shortest_edge", MIN_PIXELS)

    @property
    def max_pixels(self) -> int:
        return _pixels_option(self.preprocessor, "max_pixels", "longest_edge", MAX_PIXELS)

    def resized(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the image as the model sees it (and writes its boxes in)."""
        h, w = smart_resize(
            height, width, self.patch_size * self.merge_size, self.min_pixels, self.max_pixels
        )
        return w, h

    def layout(self, width: int, height: int) -> ImageLayout:
        w, h = self.resized(width, height)
        cell = self.patch_size * self.merge_size
        view = View(
            "image", "global", h // cell, w // cell, (0.0, 0.0, float(width), float(height)), 0
        )
        return ImageLayout(width, height, (view,))

    def views(self, image: Image.Image) -> list[Image.Image]:
        image = image.convert("RGB")
        return [image.resize(self.resized(*image.size), Image.BICUBIC)]

    def pixel_values(self, image: Image.Image) -> torch.Tensor:
        """The resized image, normalised: (1, 3, H', W'), H' and W' multiples of 28."""
        return super().pixel_values(image)

    def patches(self, pixels: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """One image's (1, 3, H', W') as the processor flattens it: (patches, 3 * 2 * 14 * 14), the
        2 x 2 patches of each LLM token together, tokens row-major, the image repeated over the
        temporal patch; and its grid (t, h, w) in patches."""
        p, m, t = self.patch_size, self.merge_size, self.temporal_patch_size
        c, height, width = pixels.shape[-3:]
        gh, gw = height // p, width // p
        x = pixels.reshape(c, gh // m, m, p, gw // m, m, p).permute(
            1, 4, 2, 5, 0, 3, 6
        )  # (gh, gw, mh, mw, C, ph, pw)
        x = x[:, :, :, :, :, None].expand(*x.shape[:5], t, p, p)
        return x.reshape(gh * gw, c * t * p * p), (1, gh, gw)

    def pixel_inputs(self, pixels: Sequence[torch.Tensor], layouts=None) -> dict[str, torch.Tensor]:
        parts, grids = zip(*(self.patches(px) for px in pixels), strict=True)
        flat = torch.cat(parts).to(self.model.dtype)
        return {
            "pixel_values": flat,
            "image_grid_thw": torch.tensor(grids, dtype=torch.long, device=flat.device),
        }

    def token_inputs(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """``mm_token_type_ids`` (1 at image tokens), from which the stock model builds M-RoPE."""
        return {"mm_token_type_ids": (input_ids == self.image_token_id).int()}

    def image_grid_thw(self, layouts: Sequence[ImageLayout], device=None) -> torch.Tensor:
        m = self.merge_size
        return torch.tensor(
            [[1, v.rows * m, v.cols * m] for lay in layouts for v in lay.views],
            dtype=torch.long,
            device=device,
        )

    def image_features(self, pixel_values) -> torch.Tensor:
        """``pixel_values``: one image's (1, 3, H', W'), several of one size (n, 3, H', W'), or a list."""
        if isinstance(pixel_values, torch.Tensor):
            pixel_values = list(pixel_values.split(1))
        inputs = self.pixel_inputs(pixel_values)
        out = self.model.model.get_image_features(
            pixel_values=inputs["pixel_values"], image_grid_thw=inputs["image_grid_thw"]
        )
        return torch.cat(list(out.pooler_output))

    # ---- positions (M-RoPE) ---------------------------------------------------------------------
    def position_ids(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        layouts: Sequence[ImageLayout],
        past_length: int = 0,
    ) -> torch.Tensor:
        """(4, batch, tokens - past_length): the 1-D text positions (what generate puts first,
        for the causal mask), then the model's own ``get_rope_index`` (temporal, height, width)
        over the real tokens of the whole sequence. A suffix after a cached prefix thus continues
        at the prefix's largest position + 1, as generate continues with ``rope_deltas``."""
        if layouts is None:
            raise ValueError(
                "Qwen2.5-VL's positions depend on each image's grid: the layouts are needed"
            )
        grid = self.image_grid_thw(layouts, input_ids.device)
        mm = self.token_inputs(input_ids)["mm_token_type_ids"]
        rope, _ = self.model.model.get_rope_index(
            input_ids, mm_token_type_ids=mm, image_grid_thw=grid, attention_mask=attention_mask
        )
        text = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
        return torch.cat([text[None].to(rope), rope])[..., past_length:]

    # ---- text ----------------------------------------------------------------------------------
    @property
    def image_token_id(self) -> int:
        return self.model.config.image_token_id

    def prompt(self, task_text: str, n_image_tokens: int) -> str:
        image = "<|vision_start|>" + "<|image_pad|>" * n_image_tokens + "<|vision_end|>"
        system = (
            f"<|im_start|>system\n{self.system_prompt}<|im_end|>\n" if self.system_prompt else ""
        )
        return f"{system}<|im_start|>user\n{image}{task_text}<|im_end|>\n<|im_start|>assistant\n"

    def parse_box(self, answer: str, width: int, height: int) -> ParsedBox:
        """The first ``bbox_2d`` (else the first four numbers), pixels of the resized image, to
        original-image pixels. Never raises: an unreadable reply is "unparsed", a corner beyond
        the resized image (1% slack, clipped) "out_of_range"."""
        try:
            rw, rh = self.resized(int(width), int(height))
        except (ValueError, ZeroDivisionError):
            return ParsedBox(None, "unparsed", 0)
        parsed = parse_box_numbers(answer, scale=float(max(rw, rh)), prefer=_BBOX)
        if parsed.box is None:
            return parsed
        x1, y1, x2, y2 = parsed.box
        if max(x1, x2) > 1.01 * rw or max(y1, y2) > 1.01 * rh:
            return ParsedBox(None, "out_of_range", parsed.n_boxes)
        sx, sy = width / rw, height / rh
        x1, x2 = min(x1, rw) * sx, min(x2, rw) * sx
        y1, y2 = min(y1, rh) * sy, min(y2, rh) * sy
        return ParsedBox((x1, y1, x2, y2), parsed.status, parsed.n_boxes)

    def format_box(self, box, width: int, height: int) -> str:
        """The reply Qwen2.5-VL writes for one box (its JSON grounding format, without the
        label): integer pixels of the resized image."""
        rw, rh = self.resized(int(width), int(height))
        x1, y1, x2, y2 = box
        vals = [
            round(x1 * rw / width),
            round(y1 * rh / height),
            round(x2 * rw / width),
            round(y2 * rh / height),
        ]
        return '```json\n[\n\t{"bbox_2d": [' + ", ".join(str(int(v)) for v in vals) + "]}\n]\n```"

    # ---- structure (for interventions) -----------------------------------------------------------
    @property
    def vision_tower(self):
        return self.model.model.visual

    @property
    def projector(self):
        return (
            self.vision_tower.merger
        )  # its output is in the tower's window order (see projector_site)

    def projector_site(self) -> Site:
        """The tower's ``pooler_output``: the merger's tokens put back into row-major order."""
        return Site("projector", self.vision_tower, "output", field="pooler_output")

    @property
    def vision_layers(self):
        return (
            self.vision_tower.blocks
        )  # Qwen2_5_VLVisionBlock x 32, windowed but for fullatt_block_indexes

    @property
    def vision_patch_grid(self) -> int:
        raise NotImplementedError(
            "Qwen2.5-VL has no fixed grid: each image's is in its layout (x vision_merge)"
        )

    @property
    def vision_merge(self) -> int:
        return self.merge_size

    def vision_tokens(self, value: torch.Tensor, layouts: Sequence[ImageLayout]) -> torch.Tensor:
        """A block's (patches of the batch, width), in the tower's window order, to each image's
        patches row-major on its (2 rows) x (2 cols) grid."""
        from transformers.vision_utils import get_vision_window_index

        cfg = self.model.config.vision_config
        grid = self.image_grid_thw(layouts)
        window, _ = get_vision_window_index(
            grid, cfg.spatial_merge_size, cfg.window_size, cfg.patch_size
        )
        m = self.merge_size
        units = value.reshape(-1, m * m, value.shape[-1])[torch.argsort(window).to(value.device)]
        out, start = [], 0
        for _, gh, gw in grid.tolist():
            n = (gh // m) * (gw // m)
            x = units[start : start + n].reshape(gh // m, gw // m, m, m, -1).permute(0, 2, 1, 3, 4)
            out.append(x.reshape(gh * gw, -1))
            start += n
        return torch.cat(out)

    def vision_tower_inputs(self, inputs: dict) -> dict:
        """The tower takes the flattened patches and each image's grid."""
        return {"hidden_states": inputs["pixel_values"], "grid_thw": inputs["image_grid_thw"]}

    # ---- the workflow's questions (no model loaded) ---------------------------------------------
    @classmethod
    def flops_geometry(cls, folder: str | Path, options: dict):
        """From config.json (hub checkpoints write the text settings at the top level, transformers 5
        under ``text_config``), for a 640 x 480 image (COCO's usual size: 23 x 17 tokens at the
        default pixel range). The tower is counted as full attention over the image's patches
        (its windowed blocks attend less: an upper bound)."""
        from ..workload import Geometry, decoder_linear

        cfg = json.loads((Path(folder) / "config.json").read_text())
        t, v = cfg.get("text_config") or cfg, cfg["vision_config"]
        linear, attn = decoder_linear(t)
        patch, merge = v.get("patch_size", 14), v.get("spatial_merge_size", 2)
        h, w = smart_resize(480, 640, patch * merge)
        patches = (h // patch) * (w // patch)
        vw, hidden = v["hidden_size"], t["hidden_size"]
        blocks = v.get("depth", v.get("num_hidden_layers"))
        vision_linear = blocks * (
            4 * vw * vw + 3 * vw * v["intermediate_size"]
        )  # qkv + proj, gated MLP
        vision_linear += (merge * merge * vw) ** 2 + merge * merge * vw * v.get(
            "out_hidden_size", hidden
        )  # merger
        return Geometry(
            linear,
            t["num_hidden_layers"],
            attn,
            hidden,
            t["vocab_size"],
            t["num_attention_heads"],
            vision_linear,
            blocks,
            vw,
            patches,
            patches // (merge * merge),
            1,
        )
