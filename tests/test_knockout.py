"""Attention knockout against an explicit reference: eager attention that zeroes the blocked
attention weights after the softmax and renormalises (a different code path from the knockout's
mask edit), for every family (the tiny InternVL and Qwen2.5-VL have grouped-query attention,
Qwen2.5-VL M-RoPE), with left padding, with the KV cache, and in every phase."""

import contextlib

import numpy as np
import pytest
import torch
from PIL import Image

from vlmloc.interventions import AttentionKnockout, BatchContext
from vlmloc.models import load_adapter
from vlmloc.runner import Runner

TEXTS = [
    ["Please provide the bounding box coordinates of the red circle.", "Is there a dog?"],
    ["List all objects in the image. Choose only from red circle, blue square.", "Hi"],
]


FAMILIES = ["llava", "internvl", "qwen2_5_vl"]


def _images():
    rng = np.random.default_rng(0)
    sizes = [(160, 120), (90, 200), (300, 100)]
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


@pytest.fixture(scope="module")
def eager(tiny_dirs):
    return {
        f: load_adapter(f, p, dtype="float32", device="cpu", attn_implementation="eager")
        for f, p in tiny_dirs.items()
    }


@pytest.fixture(scope="module")
def sdpa(tiny_dirs):
    return {
        f: load_adapter(f, p, dtype="float32", device="cpu", attn_implementation="sdpa")
        for f, p in tiny_dirs.items()
    }


def _keys(adapter, images, seed=0, frac=0.3):
    rng = np.random.default_rng(seed)
    return [
        np.sort(rng.choice(n, max(1, int(frac * n)), replace=False))
        for n in (adapter.layout(*im.size).n_tokens for im in images)
    ]


@contextlib.contextmanager
def reference(monkeypatch, adapter, layers, keys):
    """Eager attention that computes the softmax with the model's own mask, then zeroes the
    probabilities of (query after the image, blocked key) pairs in ``layers`` and renormalises.
    It reads the batch's rows from ``state`` (set by a no-op intervention)."""
    import transformers.models.llama.modeling_llama as llama
    import transformers.models.qwen2_5_vl.modeling_qwen2_5_vl as qwen2_5_vl
    import transformers.models.qwen3.modeling_qwen3 as qwen3

    state = {}

    def attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
        rep = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(rep, 1), value.repeat_interleave(rep, 1)
        w = query @ key.transpose(2, 3) * scaling
        if attention_mask is not None:
            w = w + attention_mask[..., : key.shape[-2]]
        p = torch.softmax(w.float(), -1)
        if (
            getattr(module, "layer_idx", None) in layers and state
        ):  # decoder layers (vision blocks have none)
            q, k = query.shape[2], key.shape[2]
            past = k - q
            p = p.clone()
            for b, (pos, qid) in enumerate(zip(state["positions"], state["rows"], strict=True)):
                end, blocked = int(pos[-1]), pos[torch.as_tensor(keys[qid])]
                for i in range(q):
                    if past + i > end:
                        p[b, :, i, blocked] = 0.0
            p = p / p.sum(-1, keepdim=True)
        out = (p.to(value.dtype) @ value).transpose(1, 2).contiguous()
        return out, p

    monkeypatch.setattr(llama, "eager_attention_forward", attention)
    monkeypatch.setattr(qwen3, "eager_attention_forward", attention)
    monkeypatch.setattr(qwen2_5_vl, "eager_attention_forward", attention)

    def record(adp, batch):
        state.update(positions=batch.image_positions, rows=batch.rows)
        return contextlib.nullcontext()

    record.state = state
    try:
        yield record
    finally:
        monkeypatch.undo()


def _all_scores(adapter, monkeypatch):
    seen, stock = [], adapter.model.generate

    def recording(*args, **kwargs):
        out = stock(*args, **kwargs, output_scores=True, return_dict_in_generate=True)
        seen.append(torch.stack(out.scores, 1))
        return out.sequences

    monkeypatch.setattr(adapter.model, "generate", recording)
    return seen


@pytest.mark.parametrize("family", FAMILIES)
def test_knockout_equals_the_reference_scoring_with_padding(eager, family, monkeypatch):
    """Teacher forcing over whole, left-padded sequences (phase "full")."""
    a = eager[family]
    ims = _images()
    texts, answers = (
        [TEXTS[0][0], TEXTS[1][0], "Hi"],
        [" [0.1, 0.2, 0.3, 0.4]", " red circle", " no"],
    )
    layers, keys = [0, 1], _keys(a, ims)
    runner = Runner(a, batch_size=3, progress=False)
    got = runner.score(ims, texts, answers, intervention=AttentionKnockout(layers, keys))
    stock = runner.score(ims, texts, answers)
    with reference(monkeypatch, a, layers, keys) as record:
        ref = runner.score(ims, texts, answers, intervention=record)
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(g, r, atol=1e-5)
    assert any(
        not np.allclose(g, s, atol=1e-4) for g, s in zip(got, stock, strict=True)
    )  # it does block


@pytest.mark.parametrize("family", FAMILIES)
def test_knockout_equals_the_reference_with_the_cache(eager, family, monkeypatch):
    """The shared image prefix run once, questions and generated tokens continuing from its KV
    cache (phase "suffix"): every step's logits equal the reference's."""
    a = eager[family]
    ims = _images()[:2]
    layers, keys = [1], _keys(a, ims, seed=1)
    texts = [[t[0] for t in TEXTS], [t[1] for t in TEXTS]]
    runner = Runner(a, batch_size=2, progress=False)
    with reference(monkeypatch, a, layers, keys) as record:
        seen = _all_scores(a, monkeypatch)
        ref = runner.generate_shared(ims, texts, [5, 5], intervention=record)
        ref_scores = list(seen)
        seen.clear()
        record.state.clear()  # the same eager code, blocking nothing itself: the knockout's mask edit blocks
        got = runner.generate_shared(
            ims, texts, [5, 5], intervention=AttentionKnockout(layers, keys)
        )
    assert got == ref and len(seen) == len(ref_scores) == 2
    for g, r in zip(seen, ref_scores, strict=True):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_shared_prefix_equals_full_recomputation(eager, family, monkeypatch):
    """Knockout after one shared prefix run = knockout on each whole sequence alone, recomputed
    from scratch: the same answers, and first-step logits to 1e-5 (float32)."""
    a = eager[family]
    ims = _images()
    keys, layers = _keys(a, ims, seed=2, frac=0.5), [0, 1]
    texts = [[TEXTS[0][0]] * 3, [TEXTS[1][0]] * 3]
    ko = AttentionKnockout(layers, keys)
    alone = [
        Runner(a, batch_size=1, progress=False).generate(ims, t, 6, intervention=ko) for t in texts
    ]
    seen = _all_scores(a, monkeypatch)
    shared = Runner(a, batch_size=3, progress=False).generate_shared(
        ims, texts, [6, 6], intervention=ko
    )
    assert shared == alone
    # one batch, its rows in the runner's order (visual tokens + the questions' characters)
    order = np.argsort(
        [a.layout(*im.size).n_tokens + sum(len(t[i]) for t in texts) for i, im in enumerate(ims)],
        kind="stable",
    )
    for t, scores in zip(texts, seen, strict=True):
        for row, i in enumerate(order):
            enc = a.encode([ims[i]], [t[i]])
            enc.query_ids = [int(i)]
            with torch.inference_mode(), ko(a, BatchContext.of(enc)):
                full = a.model(**enc.inputs).logits[0, -1]
            torch.testing.assert_close(scores[row, 0], full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_queries_up_to_the_image_are_untouched_and_no_key_is_a_no_op(eager, family):
    a = eager[family]
    ims = _images()
    enc = a.encode(ims, ["Hi", "Hello there", "Hi"])
    enc.query_ids = [0, 1, 2]
    inputs = dict(
        enc.inputs,
        position_ids=a.position_ids(
            enc.inputs["input_ids"], enc.inputs["attention_mask"], enc.layouts
        ),
    )
    with torch.inference_mode():
        stock = a.model(**inputs).logits
        with AttentionKnockout(range(a.num_layers), _keys(a, ims, frac=0.6))(
            a, BatchContext.of(enc)
        ):
            ko = a.model(**inputs).logits
        with AttentionKnockout(range(a.num_layers), [np.zeros(0, int)] * 3)(
            a, BatchContext.of(enc)
        ):
            none = a.model(**inputs).logits
    torch.testing.assert_close(none, stock, atol=0, rtol=0)
    for row, pos in enumerate(enc.image_positions):
        end, start = (
            int(pos[-1]),
            int(enc.inputs["attention_mask"][row].argmax()),
        )  # left padding: pads are no queries
        torch.testing.assert_close(
            ko[row, start : end + 1], stock[row, start : end + 1], atol=1e-6, rtol=0
        )
        assert not torch.allclose(ko[row, end + 1 :], stock[row, end + 1 :], atol=1e-4)
    # the prefix phase is a no-op, and hooks are removed
    before = [dict(a.attention(i)._forward_pre_hooks) for i in range(a.num_layers)]
    assert isinstance(
        AttentionKnockout([0], [np.array([0])] * 3)(a, BatchContext.of(enc, "prefix")),
        contextlib.nullcontext,
    )
    with AttentionKnockout([0, 1], [np.array([0])] * 3)(a, BatchContext.of(enc)):
        assert len(a.attention(0)._forward_pre_hooks) == len(before[0]) + 1
    assert [dict(a.attention(i)._forward_pre_hooks) for i in range(a.num_layers)] == before


@pytest.mark.parametrize("family", FAMILIES)
def test_eager_and_sdpa_give_the_same_logits(eager, sdpa, family, monkeypatch):
    """The knockout under sdpa = under eager: every generation step's logits to 1e-5, with left
    padding and the KV cache; and the knockout moves them far more than that, so a knockout that
    one implementation ignored would fail here (random weights decode the same text either way)."""
    ims = _images()
    texts = [[TEXTS[0][0]] * 3, [TEXTS[1][0]] * 3]
    scores = {}
    for name, adapters in (("eager", eager), ("sdpa", sdpa)):
        a = adapters[family]
        seen = _all_scores(a, monkeypatch)
        ko = AttentionKnockout([0, 1], _keys(a, ims, seed=3, frac=0.5))
        Runner(a, batch_size=3, progress=False).generate_shared(ims, texts, [6, 6], intervention=ko)
        if name == "sdpa":
            Runner(a, batch_size=3, progress=False).generate_shared(ims, texts, [6, 6])
        scores[name] = list(seen)
    assert len(scores["eager"]) == 2 and len(scores["sdpa"]) == 4
    for eager_step, sdpa_step in zip(scores["eager"], scores["sdpa"][:2], strict=True):
        torch.testing.assert_close(sdpa_step, eager_step, atol=1e-5, rtol=0)
    for ko_step, stock_step in zip(scores["sdpa"][:2], scores["sdpa"][2:], strict=True):
        assert (ko_step[:, 0] - stock_step[:, 0]).abs().max() > 1e-3


@pytest.mark.parametrize("family", FAMILIES)
def test_conditions_share_one_prefix_run(eager, family, monkeypatch):
    """Knockout conditions after one clean prefix run = each condition run on its own (answers
    and every step's logits); an intervention that touches the prefix cannot share it."""
    from vlmloc.interventions import ReplaceVisualTokens

    a = eager[family]
    ims = _images()
    texts = [[TEXTS[0][0]] * 3, [TEXTS[1][1]] * 3]
    runner = Runner(a, batch_size=3, progress=False)
    conditions = [
        None,
        AttentionKnockout([0], _keys(a, ims, 4, 0.5)),
        AttentionKnockout([0, 1], _keys(a, ims, 5, 0.8)),
    ]
    seen = _all_scores(a, monkeypatch)
    together = runner.generate_conditions(ims, texts, [6, 4], conditions)
    shared_scores = list(seen)  # per condition, per question
    seen.clear()
    alone = [runner.generate_shared(ims, texts, [6, 4], intervention=c) for c in conditions]
    assert together == alone and len(shared_scores) == len(seen) == 6
    for g, r in zip(shared_scores, seen, strict=True):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=0)
    assert not torch.allclose(shared_scores[0], shared_scores[4], atol=1e-4)  # the knockout acts
    edit = ReplaceVisualTokens(
        _keys(a, ims), torch.zeros(a.model.config.get_text_config().hidden_size)
    )
    with pytest.raises(ValueError, match="touch the prefix"):
        runner.generate_conditions(ims, texts, [2, 2], [None, edit])
