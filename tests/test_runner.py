"""Runner parity: with no intervention it is the stock model, batched or not."""

import contextlib

import numpy as np
import pytest
import torch
from PIL import Image

from vlmloc.models import load_adapter
from vlmloc.runner import Runner


def _images():
    rng = np.random.default_rng(0)
    sizes = [(200, 120), (90, 300), (256, 256), (333, 150)]
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


TEXTS = [
    "Please provide the bounding box coordinates of the red circle.",
    "Is there a blue square in the image?",
    "List all objects in the image. Choose only from red circle, blue square.",
    "Is there a dog in the image?",
]


@pytest.fixture(
    scope="module",
    params=[
        ("llava", "eager"),
        ("llava", "sdpa"),
        ("internvl", "eager"),
        ("internvl", "sdpa"),
        ("qwen2_5_vl", "eager"),
        ("qwen2_5_vl", "sdpa"),
    ],
    ids=lambda p: "-".join(p),
)
def adapter(request, tiny_dirs):
    family, attn = request.param
    return load_adapter(
        family, tiny_dirs[family], dtype="float32", device="cpu", attn_implementation=attn
    )


def test_generate_equals_stock_generate(adapter):
    ims = _images()
    runner = Runner(adapter, batch_size=1, progress=False)
    got = runner.generate(ims, TEXTS, max_new_tokens=6)
    for im, text, answer in zip(ims, TEXTS, got, strict=True):
        enc = adapter.encode([im], [text])
        with torch.inference_mode():
            ref = adapter.model.generate(**enc.inputs, max_new_tokens=6, do_sample=False)
        assert answer == runner.decode(ref[0, enc.inputs["input_ids"].shape[1] :])


def test_decode_marks_replies_without_eos_as_truncated(adapter):
    runner, tok = Runner(adapter, progress=False), adapter.tokenizer
    words = tok("red circle", add_special_tokens=False)["input_ids"]
    finished = runner.decode(torch.tensor(words + [tok.eos_token_id, tok.pad_token_id]))
    cut = runner.decode(torch.tensor(words))
    assert finished == cut == tok.decode(words).strip()  # same text...
    assert not finished.truncated and cut.truncated  # ...but only one ran out of tokens


def test_batched_generation_matches_single(adapter):
    """Left padding must not change what the model sees: first-step logits agree closely."""
    ims = _images()
    single = []
    for im, t in zip(ims, TEXTS, strict=True):
        enc = adapter.encode([im], [t])
        with torch.inference_mode():
            single.append(
                adapter.model.generate(
                    **enc.inputs,
                    max_new_tokens=1,
                    do_sample=False,
                    output_scores=True,
                    return_dict_in_generate=True,
                ).scores[0][0]
            )
    enc = adapter.encode(ims, TEXTS)
    with torch.inference_mode():
        batched = adapter.model.generate(
            **enc.inputs,
            max_new_tokens=1,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
        ).scores[0]
    for i in range(len(ims)):
        torch.testing.assert_close(batched[i], single[i], atol=2e-4, rtol=1e-4)
    # and the runner's batched answers come back in the caller's order
    a = Runner(adapter, batch_size=4, progress=False).generate(ims, TEXTS, max_new_tokens=4)
    b = Runner(adapter, batch_size=1, progress=False).generate(ims, TEXTS, max_new_tokens=4)
    assert a == b


def test_score_equals_stock_forward(adapter):
    ims = _images()
    answers = [" [0.1, 0.2, 0.3, 0.4]", " Yes", " red circle", " No"]
    got = Runner(adapter, batch_size=4, progress=False).score(ims, TEXTS, answers)
    for im, t, a, lp in zip(ims, TEXTS, answers, got, strict=True):
        enc = adapter.encode([im], [t], answers=[a])
        with torch.inference_mode():
            logits = adapter.model(**enc.inputs).logits[0].float()
        ids = enc.inputs["input_ids"][0]
        n = len(ids) - enc.prompt_lengths[0]
        ref = torch.log_softmax(logits[:-1], -1).gather(-1, ids[1:, None])[:, 0][-n:]
        assert len(lp) == n > 0
        np.testing.assert_allclose(lp, ref.numpy(), atol=2e-4)


def test_intervention_sees_each_batch(adapter):
    calls = []

    def record(adp, batch):
        assert batch.phase == "full" and batch.past_length == 0
        calls.append([len(p) for p in batch.image_positions])
        for row, (p, lay) in enumerate(zip(batch.image_positions, batch.layouts, strict=True)):
            assert len(p) == lay.n_tokens
            assert (batch.encoded.inputs["input_ids"][row][p] == adp.image_token_id).all()
        return contextlib.nullcontext()

    ims = _images()
    Runner(adapter, batch_size=3, progress=False).generate(
        ims, TEXTS, max_new_tokens=2, intervention=record
    )
    assert len(calls) == 2 and sum(len(c) for c in calls) == 4


QUESTIONS = [
    [
        "Please provide the bounding box coordinates of the red circle.",
        "Is there a dog in the image?",
        "Is there a blue square in the image?",
        "Please provide the bounding box of the yellow triangle.",
    ],
    [
        "List all objects in the image. Choose only from red circle, blue square.",
        "Is there a cat in the image?",
        "List all objects.",
        "Is there a green circle in the image? Answer yes or no.",
    ],
]


def _first_step_logits(adapter, monkeypatch) -> list[torch.Tensor]:
    """Record the first generated token's logits of every ``model.generate`` call."""
    seen, stock = [], adapter.model.generate

    def recording(*args, **kwargs):
        out = stock(*args, **kwargs, output_scores=True, return_dict_in_generate=True)
        seen.append(out.scores[0])
        return out.sequences

    monkeypatch.setattr(adapter.model, "generate", recording)
    return seen


def test_shared_prefix_generation_equals_generate(adapter, monkeypatch):
    """Each image's prefix run once for all its questions: what the model sees on each question
    is what it sees on that question alone (first-step logits), whatever the batch mixes (image
    sizes, question lengths), and the answers are the same as one generate per question."""
    ims = _images()
    runner = Runner(adapter, batch_size=3, progress=False)
    expected = [
        Runner(adapter, batch_size=1, progress=False).generate(ims, texts, max_new_tokens=n)
        for texts, n in zip(QUESTIONS, [8, 5], strict=True)
    ]
    seen = _first_step_logits(adapter, monkeypatch)
    order = []  # the images of each batch, in row order

    def batch_rows(adp, batch):
        if batch.phase == "prefix":
            order.append(batch.rows)
        return contextlib.nullcontext()

    got = runner.generate_shared(ims, QUESTIONS, [8, 5], intervention=batch_rows)
    assert got == expected
    assert len(order) == 2 and len(seen) == 4
    batches = iter(seen)
    for idx in order:
        for texts in QUESTIONS:
            logits = next(batches)
            for row, i in enumerate(idx):
                enc = adapter.encode([ims[i]], [texts[i]])
                with torch.inference_mode():
                    ref = adapter.model(**enc.inputs).logits[0, -1]
                torch.testing.assert_close(logits[row], ref, atol=2e-4, rtol=1e-4)
    # an intervention sees the prefix batch with its visual tokens where the prefix has them,
    # then each question as a suffix after the cached prefix
    seen, phases = [], []

    def record(adp, batch):
        ids = batch.encoded.inputs["input_ids"]
        phases.append((batch.phase, batch.past_length))
        for row, (p, lay) in enumerate(zip(batch.image_positions, batch.layouts, strict=True)):
            assert len(p) == lay.n_tokens and (ids[row][p] == adp.image_token_id).all()
            assert int(p[-1]) == ids.shape[1] - 1  # the prefix ends at its last image token
        if batch.phase == "prefix":
            seen.extend(batch.rows)
        return contextlib.nullcontext()

    runner.generate_shared(ims, QUESTIONS, [2, 2], intervention=record)
    assert sorted(seen) == [0, 1, 2, 3]
    assert [p for p, _ in phases] == ["prefix", "suffix", "suffix"] * 2
    assert all(n > 0 for p, n in phases if p == "suffix") and all(
        n == 0 for p, n in phases if p == "prefix"
    )


def test_shared_prefix_generation_applies_the_intervention(adapter, monkeypatch):
    """Ablating every visual token in the prefix run = ablating them on each question alone
    (first-step logits), and the answers equal per-question generate with the same ablation."""
    from vlmloc.interventions import ReplaceVisualTokens

    ims = _images()
    value = torch.zeros(adapter.model.config.get_text_config().hidden_size)
    edit = ReplaceVisualTokens([np.arange(adapter.layout(*im.size).n_tokens) for im in ims], value)
    runner = Runner(adapter, batch_size=4, progress=False)
    expected = [
        runner.generate(ims, texts, max_new_tokens=6, intervention=edit) for texts in QUESTIONS
    ]
    seen, order = _first_step_logits(adapter, monkeypatch), []

    def ordered_edit(adp, batch):
        if batch.phase == "prefix":
            order.extend(batch.rows)
        return edit(adp, batch)

    assert runner.generate_shared(ims, QUESTIONS, [6, 6], intervention=ordered_edit) == expected
    for logits, texts in zip(seen, QUESTIONS, strict=True):
        for row, i in enumerate(order):
            enc = adapter.encode([ims[i]], [texts[i]])
            enc.query_ids = [i]
            with torch.inference_mode(), edit(adapter, enc):
                ref = adapter.model(**enc.inputs).logits[0, -1]
            with torch.inference_mode():
                stock = adapter.model(**enc.inputs).logits[0, -1]
            torch.testing.assert_close(logits[row], ref, atol=2e-4, rtol=1e-4)
            assert not torch.allclose(
                ref, stock, atol=1e-3
            )  # the ablation changes what the model sees
