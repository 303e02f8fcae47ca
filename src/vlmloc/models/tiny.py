"""Tiny random-weight models of both families, built from configs, saved like hub snapshots.

They go through exactly the same ``from_pretrained`` + adapter path as the real checkpoints, so
tests and the demo exercise the real code. The tokenizer is a byte-level BPE trained with the
``tokenizers`` library on the task vocabulary (digits split one per token, as box answers need).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from ..tasks import BINARY_PROMPT, LIST_PROMPT, LOCALIZATION_PROMPT

CORPUS_WORDS = (
    "red green blue yellow purple orange circle square triangle ring diamond dog cat person chair "
    "car airplane bicycle bird boat bottle bus cow dining table horse motorbike potted plant sheep "
    "sofa train tv monitor yes no there is a an the in image objects list all choose only from "
    "please provide bounding box coordinates of USER ASSISTANT system user assistant"
)


def train_tokenizer(
    special_tokens: list[str], vocab_size: int = 400, corpus: list[str] | None = None
) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    corpus = (corpus or []) + [
        CORPUS_WORDS,
        LOCALIZATION_PROMPT.format(category="red circle"),
        LIST_PROMPT.format(categories="red circle, blue square"),
        BINARY_PROMPT.format(category="green triangle"),
        "[0.12, 0.5, 0.75, 0.9] <ref>dog</ref><box>[[120, 45, 800, 999]]</box> 0123456789",
    ]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus * 20, trainer=trainer)
    return tok


def _build_and_save(
    model_class, config, tokenizer, out: Path, seed: int, preprocessor: dict, options: dict
) -> Path:
    """Random weights from ``seed``; saved with tokenizer, preprocessor config and adapter options."""
    torch.manual_seed(seed)
    model = model_class(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2))
    options = {k: v for k, v in options.items() if v is not None}
    if options:  # adapter settings this checkpoint is meant to be used with
        (out / ADAPTER_OPTIONS).write_text(json.dumps(options, indent=2))
    return out


ADAPTER_OPTIONS = "vlmloc_adapter.json"


SMALL_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
}
SMALL_TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
}


def build_tiny_llava(
    out_dir: str | Path,
    seed: int = 0,
    image_size: int = 64,
    patch_size: int = 8,
    vision: dict | None = None,
    text: dict | None = None,
    corpus: list[str] | None = None,
    vocab_size: int = 400,
    system_prompt: str | None = None,
) -> Path:
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specials = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
    fast = PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(specials, vocab_size, corpus),
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )
    fast.add_bos_token = True
    n_tokens = (image_size // patch_size) ** 2
    config = LlavaConfig(
        # CLIP tower: >= 2 layers because LLaVA takes features from the second-to-last layer
        vision_config=CLIPVisionConfig(
            **(vision or SMALL_VISION),
            image_size=image_size,
            patch_size=patch_size,
            projection_dim=32,
        ),
        text_config=LlamaConfig(
            **{
                "num_key_value_heads": (text or SMALL_TEXT)["num_attention_heads"],
                **(text or SMALL_TEXT),
            },
            vocab_size=len(fast),
            max_position_embeddings=2048,
            bos_token_id=fast.bos_token_id,
            eos_token_id=fast.eos_token_id,
            pad_token_id=fast.pad_token_id,
        ),
        image_token_id=fast.convert_tokens_to_ids("<image>"),
        image_seq_length=n_tokens,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    return _build_and_save(
        LlavaForConditionalGeneration,
        config,
        fast,
        out,
        seed,
        {
            "image_processor_type": "CLIPImageProcessor",
            "size": {"shortest_edge": image_size},
            "crop_size": {"height": image_size, "width": image_size},
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711],
            "do_center_crop": True,
            "do_normalize": True,
            "do_resize": True,
            "resample": 3,
        },
        {"system_prompt": system_prompt},
    )


def build_tiny_internvl(
    out_dir: str | Path,
    seed: int = 0,
    image_size: int = 64,
    patch_size: int = 8,
    vision: dict | None = None,
    text: dict | None = None,
    corpus: list[str] | None = None,
    vocab_size: int = 400,
    system_prompt: str | None = None,
    max_tiles: int = 6,
) -> Path:
    from transformers import (
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLVisionConfig,
        Qwen3Config,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specials = [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<img>",
        "</img>",
        "<IMG_CONTEXT>",
        "<ref>",
        "</ref>",
        "<box>",
        "</box>",
    ]
    fast = PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(specials, vocab_size, corpus),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={
            "start_image_token": "<img>",
            "end_image_token": "</img>",
            "context_image_token": "<IMG_CONTEXT>",
        },
    )
    per_view = (image_size // patch_size) ** 2 // 4  # pixel shuffle 0.5 merges 2x2 patches
    config = InternVLConfig(
        vision_config=InternVLVisionConfig(
            **(vision or SMALL_VISION),
            image_size=[image_size, image_size],
            patch_size=[patch_size, patch_size],
        ),
        # Qwen3 with grouped-query attention (half as many KV heads as query heads), as InternVL-3.5's LLM
        text_config=Qwen3Config(
            **{
                "num_key_value_heads": (text or SMALL_TEXT)["num_attention_heads"] // 2,
                "head_dim": (text or SMALL_TEXT)["hidden_size"]
                // (text or SMALL_TEXT)["num_attention_heads"],
                **(text or SMALL_TEXT),
            },
            vocab_size=len(fast),
            max_position_embeddings=4096,
            eos_token_id=fast.eos_token_id,
            pad_token_id=fast.pad_token_id,
            tie_word_embeddings=True,
        ),
        image_token_id=fast.convert_tokens_to_ids("<IMG_CONTEXT>"),
        image_seq_length=per_view,
        downsample_ratio=0.5,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    return _build_and_save(
        InternVLForConditionalGeneration,
        config,
        fast,
        out,
        seed,
        {
            "image_processor_type": "GotOcr2ImageProcessor",
            "size": {"height": image_size, "width": image_size},
            "image_mean": [0.485, 0.456, 0.406],
            "image_std": [0.229, 0.224, 0.225],
            "crop_to_patches": True,
            "min_patches": 1,
            "max_patches": max_tiles,
            "do_normalize": True,
            "do_resize": True,
            "resample": 3,
        },
        {"system_prompt": system_prompt, "max_tiles": max_tiles},
    )


def build_tiny_qwen2_5_vl(
    out_dir: str | Path,
    seed: int = 0,
    patch_size: int = 14,
    min_pixels: int = 56 * 56,
    max_pixels: int = 28 * 28 * 16384,
    vision: dict | None = None,
    text: dict | None = None,
    corpus: list[str] | None = None,
    vocab_size: int = 400,
    system_prompt: str | None = None,
) -> Path:
    """Qwen2.5-VL: a window-attention vision tower (windows of 2 x 2 LLM tokens, the last block
    full attention), the 2 x 2 patch merger, and a Qwen2 decoder with grouped-query attention and
    M-RoPE. The processor's pixel range is the hub checkpoint's (the CPU-only parser assumes it)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specials = [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
    ]
    fast = PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(
            specials,
            vocab_size,
            (corpus or []) + ['```json\n[\n\t{"bbox_2d": [12, 34, 56, 78]}\n]\n```'],
        ),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_bos_token": "<|vision_start|>",
            "vision_eos_token": "<|vision_end|>",
        },
    )
    t = text or SMALL_TEXT
    v = vision or SMALL_VISION
    head_dim = t["hidden_size"] // t["num_attention_heads"]
    half = head_dim // 2  # M-RoPE splits the rotary frequencies among (temporal, height, width)
    section = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]  # 7B: 64 -> [16, 24, 24]
    ids = {name: fast.convert_tokens_to_ids(name) for name in specials}
    config = Qwen2_5_VLConfig(
        vision_config={
            "depth": v["num_hidden_layers"],
            "hidden_size": v["hidden_size"],
            "intermediate_size": v["intermediate_size"],
            "num_heads": v["num_attention_heads"],
            "patch_size": patch_size,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 4 * patch_size,
            "out_hidden_size": t["hidden_size"],
            "fullatt_block_indexes": [v["num_hidden_layers"] - 1],
        },
        text_config={
            **{"num_key_value_heads": t["num_attention_heads"] // 2, **t},
            "vocab_size": len(fast),
            "max_position_embeddings": 4096,
            "rope_parameters": {
                "rope_type": "default",
                "mrope_section": section,
                "rope_theta": 10000.0,
            },
            "bos_token_id": None,
            "eos_token_id": fast.eos_token_id,
            "pad_token_id": fast.pad_token_id,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    return _build_and_save(
        Qwen2_5_VLForConditionalGeneration,
        config,
        fast,
        out,
        seed,
        {
            "image_processor_type": "Qwen2VLImageProcessor",
            "min_pixels": min_pixels,
            "max_pixels": max_pixels,
            "patch_size": patch_size,
            "temporal_patch_size": 2,
            "merge_size": 2,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711],
            "do_normalize": True,
            "do_resize": True,
            "do_rescale": True,
            "resample": 3,
        },
        {"system_prompt": system_prompt},
    )


BUILDERS = {
    "llava": build_tiny_llava,
    "internvl": build_tiny_internvl,
    "qwen2_5_vl": build_tiny_qwen2_5_vl,
}
