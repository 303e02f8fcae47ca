"""Test-only (tests/test_flops.py, tests/test_workload.py): the paper's models at their published
sizes, and the FLOPs of a forward pass, which check ``vlmloc.workload``'s analytic counts.

The three architectures are built from their published dimensions on the meta device (no
weights, no download), and their parameter counts are checked against the published sizes.
``forward_flops`` counts 2 x (multiply-accumulates) of every matrix product of a decoder pass:
the linear layers (2 x parameters x tokens), attention's scores and weighted values (the
quadratic term) and the logits that are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# billions of parameters as published (model cards of the hub checkpoints the paper uses)
PUBLISHED_PARAMS_B = {"llava15_7b": 7.06, "llava15_13b": 13.35, "internvl35_8b": 8.5}


def paper_config(name: str):
    """The transformers config of a paper model from its published dimensions (``vlmloc.models.real_configs`` cites where each was read)."""
    from transformers import (
        CLIPVisionConfig,
        InternVLConfig,
        InternVLVisionConfig,
        LlamaConfig,
        LlavaConfig,
        Qwen3Config,
    )

    if name in ("llava15_7b", "llava15_13b"):
        hidden, mlp, layers = (4096, 11008, 32) if name == "llava15_7b" else (5120, 13824, 40)
        clip = CLIPVisionConfig(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=336,
            patch_size=14,
            projection_dim=768,
        )
        vicuna = LlamaConfig(
            hidden_size=hidden,
            intermediate_size=mlp,
            num_hidden_layers=layers,
            num_attention_heads=hidden // 128,
            num_key_value_heads=hidden // 128,
            vocab_size=32064,
        )
        return LlavaConfig(
            vision_config=clip,
            text_config=vicuna,
            image_token_id=32000,
            vision_feature_layer=-2,
            projector_hidden_act="gelu",
        )
    if name == "internvl35_8b":
        vit = InternVLVisionConfig(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=[448, 448],
            patch_size=[14, 14],
        )
        qwen3 = Qwen3Config(
            hidden_size=4096,
            intermediate_size=12288,
            num_hidden_layers=36,
            num_attention_heads=32,
            num_key_value_heads=8,
            head_dim=128,
            vocab_size=151936,
            tie_word_embeddings=False,
        )
        return InternVLConfig(
            vision_config=vit,
            text_config=qwen3,
            downsample_ratio=0.5,
            image_token_id=151671,
            tie_word_embeddings=False,
        )
    raise ValueError(f"no published dimensions for {name!r}; known: {sorted(PUBLISHED_PARAMS_B)}")


def meta_model(name: str) -> torch.nn.Module:
    """A paper model with its real architecture and no weights (the meta device)."""
    import transformers

    cfg = paper_config(name)
    cls = (
        "LlavaForConditionalGeneration"
        if name.startswith("llava")
        else "InternVLForConditionalGeneration"
    )
    with torch.device("meta"):
        return getattr(transformers, cls)(cfg)


@dataclass(frozen=True)
class DecoderDims:
    """What a decoder pass's FLOPs depend on."""

    linear_params: (
        int  # weights of every linear layer of the decoder blocks (not embeddings, not lm_head)
    )
    layers: int
    attention_width: int  # query heads x head dim
    hidden: int
    vocab: int

    @classmethod
    def of(cls, language_model: torch.nn.Module, config) -> DecoderDims:
        linear = sum(
            m.weight.numel()
            for m in language_model.layers.modules()
            if isinstance(m, torch.nn.Linear)
        )
        head_dim = (
            getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        )
        return cls(
            linear,
            config.num_hidden_layers,
            config.num_attention_heads * head_dim,
            config.hidden_size,
            config.vocab_size,
        )


def forward_flops(
    dims: DecoderDims, tokens: int, past: int = 0, logits: int = 1, causal: bool = True
) -> float:
    """FLOPs of one row's decoder pass (``workload.decoder_flops``, the torch-free formula)."""
    from vlmloc.workload import decoder_flops

    return decoder_flops(
        dims.linear_params,
        dims.layers,
        dims.attention_width,
        dims.hidden,
        dims.vocab,
        tokens,
        past,
        logits,
        causal,
    )
