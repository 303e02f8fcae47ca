"""Per-head mediation and head ablation (paper sec. 3.3.2-3.3.3) on tiny random-weight models of
the families (the InternVL and Qwen2.5-VL ones have 2 key/value heads for 4 query heads: GQA)."""

import numpy as np
import pytest
import torch
from PIL import Image

from vlmloc.experiments.mediation import (
    content_nll,
    mediate_pair,
    mediation_pairs,
    pair_sequence,
    patch_positions,
)
from vlmloc.experiments.reference import mediate_pair_reference
from vlmloc.interventions import HeadCapture, HeadPatch, HeadZero
from vlmloc.tasks import task_prompt

ROW = {
    "bbox_x": 10,
    "bbox_y": 20,
    "bbox_w": 30,
    "bbox_h": 12,
    "width": 80,
    "height": 60,
    "category": "red circle",
}


def _image(seed: int, size=(80, 60)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def _pair(adapter, tasks=("localization", "binary")):
    src, base = (
        _image(1),
        Image.new("RGB", (80, 60), (255, 255, 255)),
    )  # far apart for a random model
    layout = adapter.layout(*src.size)
    items = [
        (
            task_prompt(t, ROW["category"], []),
            adapter.gold_tokens(t, ROW, task_prompt(t, "red circle", [])),
        )
        for t in tasks
    ]
    return adapter.pixel_values(src), adapter.pixel_values(base), layout, items


def _mf(res):
    pb, ps, pp = np.exp(res["base"]), np.exp(res["source"]), np.exp(res["patched"])
    return (pb - pp) / (pb - ps)


def _mask(a, task, row=ROW):
    """(content, template) of a gold answer's tokens, each joined as decoded."""
    tokens = a.gold_tokens(task, row, task_prompt(task, row["category"], []))
    text = [a.tokenizer.decode([i]) for i in tokens.ids]
    content = "".join(t for t, c in zip(text, tokens.content, strict=True) if c)
    template = "".join(t for t, c in zip(text, tokens.content, strict=True) if not c)
    return tokens, content, template


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_template_mask_is_as_documented(adapters, family):
    """Content = the box's numbers (LLaVA's without their "0.", ``box_leading_zero``) / the word
    Yes; template = brackets, commas, spaces, markup, the answer prefix and EOS."""
    a = adapters[family]
    loc, content, template = _mask(a, "localization")
    assert loc.ids[-1] == a.tokenizer.eos_token_id and not loc.content[-1]
    if family == "llava":  # " [0.12, 0.38, 0.50, 0.53]" of the image padded to an 80 x 80 square
        assert (
            content == "12385053"
            and template.replace(a.tokenizer.eos_token, "") == " [0., 0., 0., 0.]"
        )
        options = {**a.options, "system_prompt": a.system_prompt, "box_leading_zero": "content"}
        whole = type(a)(a.model, a.tokenizer, a.preprocessor, **options)
        _, content, template = _mask(whole, "localization")
        assert (
            content == "0.120.380.500.53"
            and template.replace(a.tokenizer.eos_token, "") == " [, , , ]"
        )
    else:  # "<box>[[125, 333, 500, 533]]</box>" in 0..1000 of the image
        assert (
            content == "125333500533"
            and template.replace(a.tokenizer.eos_token, "") == "<box>[[, , , ]]</box>"
        )
    yes = a.gold_tokens("binary", ROW, task_prompt("binary", ROW["category"], []))
    assert (
        "".join(a.tokenizer.decode([i]) for i, c in zip(yes.ids, yes.content, strict=True) if c)
        == "Yes"
    )
    template = "".join(
        a.tokenizer.decode([i]) for i, c in zip(yes.ids[:-1], yes.content, strict=False) if not c
    )
    assert template == a.answer_prefix and not yes.content[-1]  # the prefix (LLaVA's space) and EOS


@pytest.mark.parametrize("family", ["llava", "internvl", "qwen2_5_vl"])
@pytest.mark.parametrize("positions", ["post_image", "answer", "all"])
def test_fast_mediation_equals_the_reference(adapters, family, positions):
    a = adapters[family]
    src, base, layout, items = _pair(a)
    fast = mediate_pair(
        a, src, base, layout, items, positions, heads_per_batch=3
    )  # batches of 3 (a last short one)
    ref = mediate_pair_reference(a, src, base, layout, items, positions)
    for f, r in zip(fast, ref, strict=True):
        assert abs(f["base"] - r["base"]) < 1e-5 and abs(f["source"] - r["source"]) < 1e-5
        assert len(f["patched"]) == a.num_layers * a.num_heads
        np.testing.assert_allclose(f["patched"], r["patched"], atol=1e-5)
        if abs(f["base"] - f["source"]) > 0.05:
            np.testing.assert_allclose(_mf(f), _mf(r), atol=1e-4)


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_patches_change_the_score_and_no_patch_changes_nothing(adapters, family):
    a = adapters[family]
    src, base, layout, items = _pair(a, ("localization",))
    res = mediate_pair(a, src, base, layout, items, "post_image", 64)[0]
    assert abs(res["base"] - res["source"]) > 1e-3  # the two images differ for the model
    mf = _mf(res)
    assert np.abs(mf).max() > 1e-3, "no head patch changed the score"
    # a row that patches nothing is the base run: MF = 0
    seq = pair_sequence(a, layout, *items[0])
    capture, dev = HeadCapture(range(a.num_layers)), a.device
    with torch.inference_mode():
        with capture(a):
            a.model(input_ids=seq.ids[None], pixel_values=src)
        source = {layer: capture.assemble(layer)[0] for layer in range(a.num_layers)}
        with HeadPatch(source, [None], patch_positions(seq, "post_image"))(a):
            none = a.model(input_ids=seq.ids[None].to(dev), pixel_values=base).logits
    assert float(content_nll(none[:, -len(seq.answer) - 1 :], seq.answer)[0]) == pytest.approx(
        res["base"], abs=1e-6
    )


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_every_head_at_every_post_image_position_gives_mf_one(adapters, family):
    """The residual stream after the image becomes the source's: MF = 1 exactly (to rounding)."""
    a = adapters[family]
    src, base, layout, items = _pair(a)
    every = [(layer, h) for layer in range(a.num_layers) for h in range(a.num_heads)]
    for text, answer in items:
        seq = pair_sequence(a, layout, text, answer)
        ids = seq.ids[None]
        with torch.inference_mode():
            capture = HeadCapture(range(a.num_layers))
            with capture(a):
                s = a.model(input_ids=ids, pixel_values=src).logits
            source = {layer: capture.assemble(layer)[0] for layer in range(a.num_layers)}
            b = a.model(input_ids=ids, pixel_values=base).logits
            with HeadPatch(source, [every], patch_positions(seq, "post_image"))(a):
                p = a.model(input_ids=ids, pixel_values=base).logits
        nll = {
            k: float(content_nll(v[:, -len(answer) - 1 :], answer)[0])
            for k, v in (("s", s), ("b", b), ("p", p))
        }
        mf = (np.exp(nll["b"]) - np.exp(nll["p"])) / (np.exp(nll["b"]) - np.exp(nll["s"]))
        assert abs(nll["b"] - nll["s"]) > 1e-3 and mf == pytest.approx(1.0, abs=1e-5), nll


@pytest.mark.parametrize("family", ["llava", "internvl", "qwen2_5_vl"])
def test_batch_rows_do_not_leak(adapters, family):
    """A head patched alone scores as it does among a batch of other heads."""
    a = adapters[family]
    src, base, layout, items = _pair(a, ("localization",))
    batched = mediate_pair(a, src, base, layout, items, "post_image", 64)[0]["patched"]
    heads = [(layer, h) for layer in range(a.num_layers) for h in range(a.num_heads)]
    for k in (0, len(heads) - 1, len(heads) // 2 + 1):
        alone = mediate_pair(a, src, base, layout, items, "post_image", 64, heads=[heads[k]])[0][
            "patched"
        ][0]
        assert alone == pytest.approx(batched[k], abs=1e-5)


def test_gqa_model_patches_query_heads(adapters):
    a = adapters["internvl"]
    assert a.num_kv_heads < a.num_heads  # the tiny InternVL is GQA, as Qwen3 is
    src, base, layout, items = _pair(a, ("localization",))
    res = mediate_pair(a, src, base, layout, items, "post_image", 64)[0]
    per_layer = res["patched"].reshape(a.num_layers, a.num_heads)
    # query heads sharing one key/value head still patch differently
    assert not np.allclose(per_layer[-1, 0], per_layer[-1, 1], atol=1e-6)


@pytest.mark.parametrize("family", ["llava", "internvl", "qwen2_5_vl"])
@pytest.mark.parametrize("positions", ["all", "post_image"])
def test_zeroing_a_head_changes_its_slice_only(adapters, family, positions):
    a = adapters[family]
    enc = a.encode([_image(3)], ["Describe the image."])
    layer, head, n = 1, 2, a.num_layers

    def capture(intervention=None):
        cap = HeadCapture(range(n))
        with (
            torch.inference_mode(),
            intervention(a, enc) if intervention else HeadCapture([])(a),
            cap(a),
        ):
            a.model(**enc.inputs)
        return {k: cap.assemble(k)[0] for k in range(n)}

    clean, zeroed = capture(), capture(HeadZero([(layer, head)], positions))
    for k in range(layer):
        assert torch.equal(clean[k], zeroed[k])
    after = int(enc.image_positions[0][-1]) + 1 if positions == "post_image" else 0
    diff = (clean[layer] != zeroed[layer]).any(-1)  # (positions, heads)
    assert (zeroed[layer][after:, head] == 0).all() and diff[after:, head].all()
    others = [h for h in range(a.num_heads) if h != head]
    assert not diff[:, others].any() and not diff[:after].any()
    assert not torch.equal(clean[n - 1], zeroed[n - 1])  # and it changes what follows


@pytest.mark.parametrize("family", ["llava", "internvl", "qwen2_5_vl"])
def test_head_hooks_are_removed_even_on_error(adapters, family):
    a = adapters[family]
    modules = [m for m in a.model.modules()]
    before = [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in modules]
    src, base, layout, items = _pair(a, ("binary",))
    mediate_pair(a, src, base, layout, items, "post_image", 64)
    with pytest.raises(RuntimeError), HeadZero([(0, 0), (1, 3)])(a, None):
        raise RuntimeError("forward failed")
    seq = pair_sequence(a, layout, *items[0])
    with (
        pytest.raises(RuntimeError),
        HeadPatch({0: torch.zeros(1)}, [(0, 1)], patch_positions(seq, "all"))(a),
    ):
        raise RuntimeError("forward failed")
    assert [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in modules] == before


def test_mediation_pairs_are_a_seeded_draw():
    pool = [f"s{i:03d}" for i in range(40)]
    pairs = mediation_pairs(pool, 10, seed=0)
    assert (
        len(pairs) == 10
        and set(pairs) <= set(pool)
        and pairs == mediation_pairs(pool[::-1], 10, seed=0)
    )
    assert pairs != mediation_pairs(pool, 10, seed=1) and mediation_pairs(pool, 99, 0) == sorted(
        pool
    )


@pytest.mark.parametrize("family", ["llava", "internvl", "qwen2_5_vl"])
def test_shared_prefix_scoring_equals_one_full_forward_per_sample(adapters, family):
    """``Runner.score_conditions`` (prefixes once, left padding, conditions continuing the cache)
    gives each sample's content NLL as a plain forward of its whole sequence, with and without a
    head ablation after the image; the ablation changes it."""
    from vlmloc.runner import Runner, content_nll

    a = adapters[family]
    sizes = [(80, 60), (60, 80), (120, 50)]  # InternVL: 1 view, 1 view, 3 views (padding)
    images = [_image(10 + k, s) for k, s in enumerate(sizes)]
    rows = [dict(ROW, width=w, height=h) for w, h in sizes]
    tasks = ("localization", "binary")
    prompts = [[task_prompt(t, ROW["category"], []) for _ in images] for t in tasks]
    golds = [
        [a.gold_tokens(t, r, p) for r, p in zip(rows, ps, strict=True)]
        for t, ps in zip(tasks, prompts, strict=True)
    ]
    zero = HeadZero([(0, 1), (1, 2)], "post_image")
    got = Runner(a, batch_size=3, progress=False).score_conditions(
        images, prompts, golds, [None, zero]
    )
    for c, intervention in enumerate((None, zero)):
        for t in range(len(tasks)):
            for i, im in enumerate(images):
                enc = a.encode([im], [prompts[t][i]])
                ids = torch.cat([enc.inputs["input_ids"], torch.tensor([golds[t][i].ids])], 1)
                with (
                    torch.inference_mode(),
                    intervention(a, enc) if intervention else HeadCapture([])(a),
                ):
                    inputs = (
                        enc.inputs
                        | {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
                        | a.token_inputs(ids)
                    )
                    logits = a.model(**inputs).logits
                ref = float(content_nll(logits, golds[t][i])[0])
                assert got[c][t][i] == pytest.approx(ref, abs=1e-5), (c, t, i)
    assert np.abs(np.array(got[0]) - np.array(got[1])).max() > 1e-4  # the ablation did something
