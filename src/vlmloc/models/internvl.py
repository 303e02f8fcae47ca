"""InternVL-3.5 (8B): InternViT-300M + pixel shuffle + MLP projector + Qwen3.

Dynamic high resolution as in InternVL's reference ``dynamic_preprocess``: the image is stretched
to the tile grid (cols x rows of 448 px) closest to its aspect ratio, with at most ``max_tiles``
tiles (the paper caps at 6); the tiles come row-major, then the 448 px thumbnail (global view)
LAST when there is more than one tile. Each view gives 16 x 16 tokens after pixel shuffle,
row-major, each covering 28 x 28 px of its view. Box answers: ``<box>[[x1, y1, x2, y2]]</box>``
with integers 0..1000 of the ORIGINAL image.
"""

from __future__ import annotations

import re

from PIL import Image

from ..tasks import ParsedBox, parse_box_numbers
from .base import Adapter, ImageLayout, View

# InternVL's preprocessing: ImageNet normalisation (InternVL's build_transform, and transformers'
# convert_internvl_weights_to_hf.py write_image_processor), 448 px tiles (InternViT-300M-448px,
# patch 14, pixel shuffle 0.5 -> 16 x 16 tokens per view). The hub's own cap is 12 tiles
# (max_num=12 in the model card's load_image; the HF processor's max_patches); the paper caps the
# local tiles at 6, the default here (option max_tiles).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TILE = 448  # px, a tile of the hub checkpoint (patch 14, pixel shuffle 0.5: 256 tokens)
HUB_MAX_TILES, PAPER_MAX_TILES = 12, 6

INTERNVL_SYSTEM = "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"
_BOX = re.compile(r"<box>\s*\[\[(.*?)\]\]\s*</box>", re.S)


def target_ratios(min_num: int, max_num: int) -> list[tuple[int, int]]:
    ratios = {
        (i, j)
        for n in range(min_num, max_num + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if min_num <= i * j <= max_num
    }
    return sorted(ratios, key=lambda r: r[0] * r[1])


def closest_tile_grid(
    width: int, height: int, tile: int, min_num: int = 1, max_num: int = 6
) -> tuple[int, int]:
    """(cols, rows) as InternVL's find_closest_aspect_ratio picks them (ties -> more tiles if the
    image is large enough)."""
    aspect = width / height
    best, best_diff = (1, 1), float("inf")
    for cols, rows in target_ratios(min_num, max_num):
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and width * height > 0.5 * tile * tile * cols * rows:
            best = (cols, rows)
    return best


class InternVLAdapter(Adapter):
    box_scale = 1000.0  # <box>[[x1, y1, x2, y2]]</box> in 0..1000
    family = "internvl"
    model_class_name = "InternVLForConditionalGeneration"
    system_prompt = INTERNVL_SYSTEM
    hub_image_mean, hub_image_std = IMAGENET_MEAN, IMAGENET_STD

    @classmethod
    def makes_local_views(cls, options: dict) -> bool:
        return (
            int(options.get("max_tiles", PAPER_MAX_TILES)) > 1
        )  # the paper's 6 unless the config says otherwise

    @classmethod
    def flops_geometry(cls, folder, options: dict):
        """Every view counted: the tiles and the thumbnail, with ``max_tiles`` of them."""
        from ..workload import Geometry

        tiles = int(options.get("max_tiles", 1))
        return Geometry.of_checkpoint(folder, 1 + tiles if tiles > 1 else 1)

    @property
    def tile(self) -> int:
        size = self.model.config.vision_config.image_size
        return size[0] if isinstance(size, list | tuple) else size

    @property
    def grid(self) -> int:
        return int(self.vision_patch_grid * self.model.config.downsample_ratio)

    @property
    def vision_layers(self):
        return self.vision_tower.encoder.layer  # InternVisionLayer x 24 (InternViT-300M)

    @property
    def vision_patch_grid(self) -> int:
        """32 per 448 px view: patch (R, C) becomes part of visual token (R // 2, C // 2) by the
        pixel shuffle (downsample_ratio 0.5 merges 2 x 2 patches)."""
        patch = self.model.config.vision_config.patch_size
        patch = patch[0] if isinstance(patch, list | tuple) else patch
        return self.tile // patch

    @property
    def max_tiles(self) -> int:
        return int(self.options.get("max_tiles", PAPER_MAX_TILES))

    @property
    def image_token_id(self) -> int:
        return self.model.config.image_token_id

    def layout(self, width: int, height: int) -> ImageLayout:
        cols, rows = closest_tile_grid(width, height, self.tile, 1, self.max_tiles)
        g, views = self.grid, []
        if cols * rows == 1:
            return ImageLayout(
                width, height, (View("global", "global", g, g, (0, 0, width, height), 0),)
            )
        tw, th = width / cols, height / rows
        for k in range(cols * rows):
            r, c = divmod(k, cols)
            views.append(
                View(
                    f"tile_{k}",
                    "local",
                    g,
                    g,
                    (c * tw, r * th, (c + 1) * tw, (r + 1) * th),
                    k * g * g,
                )
            )
        views.append(View("global", "global", g, g, (0, 0, width, height), cols * rows * g * g))
        return ImageLayout(width, height, tuple(views))

    def views(self, image: Image.Image) -> list[Image.Image]:
        image = image.convert("RGB")
        w, h = image.size
        cols, rows = closest_tile_grid(w, h, self.tile, 1, self.max_tiles)
        t = self.tile
        resized = image.resize((cols * t, rows * t), Image.BICUBIC)
        views = [
            resized.crop(((k % cols) * t, (k // cols) * t, (k % cols + 1) * t, (k // cols + 1) * t))
            for k in range(cols * rows)
        ]
        if len(views) > 1:
            views.append(image.resize((t, t), Image.BICUBIC))
        return views

    def prompt(self, task_text: str, n_image_tokens: int) -> str:
        image = "<img>" + "<IMG_CONTEXT>" * n_image_tokens + "</img>"
        system = (
            f"<|im_start|>system\n{self.system_prompt}<|im_end|>\n" if self.system_prompt else ""
        )
        return f"{system}<|im_start|>user\n{image}\n{task_text}<|im_end|>\n<|im_start|>assistant\n"

    def parse_box(self, answer: str, width: int, height: int) -> ParsedBox:
        parsed = parse_box_numbers(answer, scale=self.box_scale, prefer=_BOX)
        if parsed.box is None:
            return parsed
        x1, y1, x2, y2 = parsed.box
        return ParsedBox(
            (
                x1 / self.box_scale * width,
                y1 / self.box_scale * height,
                x2 / self.box_scale * width,
                y2 / self.box_scale * height,
            ),
            parsed.status,
            parsed.n_boxes,
        )

    def format_box(self, box, width: int, height: int) -> str:
        x1, y1, x2, y2 = box
        k = self.box_scale
        vals = [
            round(x1 / width * k),
            round(y1 / height * k),
            round(x2 / width * k),
            round(y2 / height * k),
        ]
        return "<box>[[" + ", ".join(str(int(v)) for v in vals) + "]]</box>"
