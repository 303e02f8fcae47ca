"""LLaVA-1.5 (7B / 13B): CLIP ViT-L/14-336 + MLP projector + Vicuna.

Preprocessing follows the paper and the original LLaVA (not the hub processor, which
centre-crops): pad the image to a square with the CLIP mean colour, resize to 336 px
-> 24 x 24 visual tokens, row-major. Box answers are [x1, y1, x2, y2] in 0..1 of the PADDED square.
"""

from __future__ import annotations

from PIL import Image

from ..tasks import ParsedBox, parse_box_numbers
from .base import Adapter, ImageLayout, View

# CLIP ViT-L/14-336's preprocessing (openai/clip-vit-large-patch14-336 and
# llava-hf/llava-1.5-7b-hf preprocessor_config.json: transformers' OPENAI_CLIP_MEAN / _STD,
# crop 336, patch 14 in the vision config).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# LLaVA's expand2square background (haotian-liu/LLaVA llava/mm_utils.py process_images:
# tuple(int(x * 255) for x in image_processor.image_mean)): the CLIP mean, truncated
PAD_COLOUR = tuple(int(m * 255) for m in CLIP_MEAN)  # (122, 116, 104)

# conv_vicuna_v1, the template LLaVA-1.5 was trained with
VICUNA_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)


class LlavaAdapter(Adapter):
    family = "llava"
    model_class_name = "LlavaForConditionalGeneration"
    system_prompt = VICUNA_SYSTEM
    answer_prefix = " "  # "ASSISTANT: [0.1, ...]"
    hub_image_mean, hub_image_std = CLIP_MEAN, CLIP_STD

    @property
    def image_size(self) -> int:
        return self.model.config.vision_config.image_size

    @property
    def grid(self) -> int:
        return self.image_size // self.model.config.vision_config.patch_size

    @property
    def vision_layers(self):
        return self.vision_tower.encoder.layers  # CLIPEncoderLayer x 24 (ViT-L/14-336)

    @property
    def vision_patch_grid(self) -> int:
        return self.grid  # no merge: patch (r, c) of the CLIP tower is visual token (r, c)

    @property
    def image_token_id(self) -> int:
        return self.model.config.image_token_id

    @property
    def pad_colour(self) -> tuple[int, int, int]:
        return tuple(int(m * 255) for m in self.image_mean)  # PAD_COLOUR for CLIP's mean

    @staticmethod
    def square_offset(width: int, height: int) -> tuple[int, int, int]:
        """Side of the padded square and where the image sits in it (LLaVA's expand2square)."""
        side = max(width, height)
        return side, (side - width) // 2, (side - height) // 2

    def layout(self, width: int, height: int) -> ImageLayout:
        side, ox, oy = self.square_offset(width, height)
        view = View("image", "global", self.grid, self.grid, (-ox, -oy, side - ox, side - oy), 0)
        return ImageLayout(width, height, (view,))

    def pad_to_square(self, image: Image.Image) -> Image.Image:
        image = image.convert("RGB")
        side, ox, oy = self.square_offset(*image.size)
        canvas = Image.new("RGB", (side, side), self.pad_colour)
        canvas.paste(image, (ox, oy))
        return canvas

    def views(self, image: Image.Image) -> list[Image.Image]:
        return [self.pad_to_square(image).resize((self.image_size, self.image_size), Image.BICUBIC)]

    def prompt(self, task_text: str, n_image_tokens: int) -> str:
        image = "<image>" * n_image_tokens
        system = f"{self.system_prompt} " if self.system_prompt else ""
        return f"{system}USER: {image}\n{task_text} ASSISTANT:"

    def parse_box(self, answer: str, width: int, height: int) -> ParsedBox:
        parsed = parse_box_numbers(answer, scale=self.box_scale)
        if parsed.box is None:
            # some replies give pixels of the padded square; those are out of the trained format
            return parsed
        side, ox, oy = self.square_offset(width, height)
        x1, y1, x2, y2 = parsed.box
        box = (x1 * side - ox, y1 * side - oy, x2 * side - ox, y2 * side - oy)
        return ParsedBox(box, parsed.status, parsed.n_boxes)

    def format_box(self, box, width: int, height: int) -> str:
        side, ox, oy = self.square_offset(width, height)
        x1, y1, x2, y2 = box
        vals = [(x1 + ox) / side, (y1 + oy) / side, (x2 + ox) / side, (y2 + oy) / side]
        return "[" + ", ".join(f"{v:.2f}" for v in vals) + "]"
