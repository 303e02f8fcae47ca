"""The one builder of scored sequences (``Adapter.reply_tokens`` / ``answer_tokens``) gives the
committed toys exactly the ids the earlier rule gave (the gold text tokenized on its own, then
EOS): their byte-level BPE splits the same either way, so the demo's numbers do not move with the
builder. Only the mask moves, by the ``box_leading_zero`` default (LLaVA's "0." is template)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from vlmloc.data.shapes import COLOURS, SHAPES
from vlmloc.models import ADAPTERS
from vlmloc.models.base import GoldAnswer, load_tokenizer
from vlmloc.tasks import task_prompt

ROOT = Path(__file__).resolve().parents[1]
TOYS = {"toy_llava": "llava", "toy_internvl": "internvl"}
CATEGORIES = [f"{c} {s}" for c in COLOURS for s in SHAPES]


def toy_adapter(name: str, **options):
    """A committed toy's adapter without its weights: its config, tokenizer and options."""
    from transformers import AutoConfig

    path = ROOT / "checkpoints" / name
    saved = json.loads((path / "vlmloc_adapter.json").read_text())
    return ADAPTERS[TOYS[name]](
        SimpleNamespace(config=AutoConfig.from_pretrained(path)),
        load_tokenizer(path),
        json.loads((path / "preprocessor_config.json").read_text()),
        **{**saved, **options},
    )


def old_answer_tokens(adapter, gold: GoldAnswer):
    """The rule before the builder: the gold text tokenized alone (no BOS), then EOS."""
    enc = adapter.tokenizer(gold.text, add_special_tokens=False, return_offsets_mapping=True)
    content = [
        b > a and any(a < e and b > s for s, e in gold.spans) for a, b in enc["offset_mapping"]
    ]
    return tuple(enc["input_ids"]) + (adapter.tokenizer.eos_token_id,), tuple(content) + (False,)


def samples(n: int, seed: int = 0):
    """Rows like the demo's: shapes images of 120..420 px with boxes anywhere in them, the full
    image and the edges included."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        w, h = (int(v) for v in rng.integers(120, 421, 2))
        x1, y1 = (
            (0, 0) if k % 7 == 0 else (int(rng.integers(0, w - 10)), int(rng.integers(0, h - 10)))
        )
        x2, y2 = (
            (w, h)
            if k % 5 == 0
            else (int(rng.integers(x1 + 5, w + 1)), int(rng.integers(y1 + 5, h + 1)))
        )
        present = sorted(rng.choice(len(CATEGORIES), size=int(rng.integers(1, 5)), replace=False))
        names = [CATEGORIES[i] for i in present]
        rows.append(
            {
                "bbox_x": x1,
                "bbox_y": y1,
                "bbox_w": x2 - x1,
                "bbox_h": y2 - y1,
                "width": w,
                "height": h,
                "category": names[int(rng.integers(len(names)))],
                "present": names,
            }
        )
    return rows


@pytest.mark.parametrize("name", list(TOYS))
def test_builder_gives_the_toys_the_earlier_ids(name):
    old_rule = toy_adapter(name, box_leading_zero="content")
    default = toy_adapter(name)
    zero_masked = 0
    for row in samples(300):
        for task in ("localization", "list", "binary"):
            text = task_prompt(task, row["category"], CATEGORIES)
            gold = old_rule.gold_answer(task, row, row["present"])
            new = old_rule.gold_tokens(task, row, text, row["present"])
            assert (new.ids, new.content) == old_answer_tokens(old_rule, gold), (task, gold.text)
            # the default mask: the same ids; content differs only where a "0." became template
            masked = default.gold_tokens(task, row, text, row["present"])
            assert masked.ids == new.ids
            changed = [
                k
                for k, (a, b) in enumerate(zip(new.content, masked.content, strict=True))
                if a != b
            ]
            for k in changed:
                assert new.content[k] and default.tokenizer.decode([new.ids[k]]).strip() in (
                    "0",
                    ".",
                )
            zero_masked += len(changed)
    if TOYS[name] == "llava":
        assert zero_masked > 1000  # every coordinate below 1 lost its "0" and "."
    else:
        assert zero_masked == 0  # integers 0..1000: nothing to mask


def test_builder_refuses_a_reply_merged_with_the_prompt():
    """A prompt whose last token would merge with the reply's first cannot be scored as
    generation writes it: the builder says so instead of scoring another sequence."""
    a = toy_adapter("toy_llava")
    with pytest.raises(ValueError, match="merges the prompt's end"):
        a.reply_tokens("USER: what ASSIS", "TANT: yes")
    prompt_ids, reply_ids, spans = a.reply_tokens("USER: what? ASSISTANT:", " yes")
    assert a.tokenizer.decode(reply_ids) == " yes" and spans[0][0] == 0 and spans[-1][1] == 4
    assert prompt_ids == a.tokenizer("USER: what? ASSISTANT:")["input_ids"]
