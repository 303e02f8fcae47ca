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


@pytest.fixture(scope="module", params=[("llava", "eager"), ("llava", "sdpa"), ("internvl", "eager"), ("internvl", "sdpa")], ids=lambda p: "-".join(p))
def adapter(request, tiny_dirs):
    family, attn = request.param
    return load_adapter(family, tiny_dirs[family], dtype="float32", device="cpu", attn_implementation=attn)


def test_generate_equals_stock_generate(adapter):
    ims = _images()
    runner = Runner(adapter, batch_size=1, progress=False)
    got = runner.generate(ims, TEXTS, max_new_tokens=6)
    for im, text, answer in zip(ims, TEXTS, got, strict=True):
        enc = adapter.encode([im], [text])
        with torch.inference_mode():
            ref = adapter.model.generate(**enc.inputs, max_new_tokens=6, do_sample=False)
        assert answer == runner.decode(ref[0, enc.inputs["input_ids"].shape[1] :])


def test_batched_generation_matches_single(adapter):
    """Left padding must not change what the model sees: first-step logits agree closely."""
    ims = _images()
    single = []
    for im, t in zip(ims, TEXTS, strict=True):
        enc = adapter.encode([im], [t])
        with torch.inference_mode():
            single.append(adapter.model.generate(**enc.inputs, max_new_tokens=1, do_sample=False, output_scores=True, return_dict_in_generate=True).scores[0][0])
    enc = adapter.encode(ims, TEXTS)
    with torch.inference_mode():
        batched = adapter.model.generate(**enc.inputs, max_new_tokens=1, do_sample=False, output_scores=True, return_dict_in_generate=True).scores[0]
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

    def record(adp, enc):
        calls.append([len(p) for p in enc.image_positions])
        for row, (p, lay) in enumerate(zip(enc.image_positions, enc.layouts, strict=True)):
            assert len(p) == lay.n_tokens
            assert (enc.inputs["input_ids"][row][p] == adp.image_token_id).all()
        return contextlib.nullcontext()

    ims = _images()
    Runner(adapter, batch_size=3, progress=False).generate(ims, TEXTS, max_new_tokens=2, intervention=record)
    assert len(calls) == 2 and sum(len(c) for c in calls) == 4
