import numpy as np
import pytest
import torch
from PIL import Image

from vlmloc.interventions import ReplaceVisualTokens, mean_visual_embedding, random_token_indices
from vlmloc.runner import Runner

TEXT = "Is there a red circle in the image?"


def _image(seed, size=(160, 120)):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_edit_touches_only_chosen_tokens_and_cleans_up(adapters, family):
    a = adapters[family]
    enc = a.encode([_image(0), _image(1, (90, 200))], [TEXT, TEXT])
    n0, n1 = (lay.n_tokens for lay in enc.layouts)
    value = torch.full((a.model.config.text_config.hidden_size,), 3.0)
    chosen = [np.array([0, 5]), np.array([n1 - 1])]
    hooks_before = dict(a.projector._forward_hooks)
    with torch.inference_mode():
        ref = a.image_features(enc.inputs["pixel_values"])
        with ReplaceVisualTokens(chosen, value)(a, enc):
            got = a.image_features(enc.inputs["pixel_values"])
        after = a.image_features(enc.inputs["pixel_values"])
    assert dict(a.projector._forward_hooks) == hooks_before
    torch.testing.assert_close(after, ref)  # hooks off -> identical to the stock model
    changed = torch.zeros(n0 + n1, dtype=torch.bool)
    changed[[0, 5, n0 + n1 - 1]] = True
    assert torch.equal(got[~changed], ref[~changed])
    assert (got[changed] == 3.0).all()


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_ablating_every_token_removes_the_image(adapters, family):
    a = adapters[family]
    ims = [_image(1), _image(2)]  # same size, different content
    n = a.layout(*ims[0].size).n_tokens
    mean = mean_visual_embedding(a, ims)
    every = ReplaceVisualTokens([np.arange(n), np.arange(n)], mean)
    runner = Runner(a, batch_size=2, progress=False)
    stock = runner.score(ims, [TEXT, TEXT], [" Yes", " Yes"])
    ablated = runner.score(ims, [TEXT, TEXT], [" Yes", " Yes"], intervention=every)
    assert not np.allclose(stock[0], stock[1])  # the image matters to the stock model...
    np.testing.assert_allclose(ablated[0], ablated[1], atol=1e-5)  # ...and not once it is gone


def test_mean_embedding_is_the_token_mean(adapters):
    a = adapters["llava"]
    ims = [_image(3), _image(4, (100, 100))]
    with torch.inference_mode():
        feats = a.image_features(torch.cat([a.pixel_values(im) for im in ims]))
    torch.testing.assert_close(mean_visual_embedding(a, ims, batch_size=1), feats.mean(0))


def test_runner_reordering_keeps_edits_on_their_query(adapters):
    a = adapters["internvl"]
    ims = [
        _image(5, (300, 100)),
        _image(6, (100, 100)),
        _image(7, (200, 400)),
        _image(8, (120, 90)),
    ]
    texts = [TEXT] * 4
    answers = [" Yes"] * 4
    n1 = a.layout(*ims[1].size).n_tokens
    edit = ReplaceVisualTokens(
        [[], np.arange(n1), [], []], torch.zeros(a.model.config.text_config.hidden_size)
    )
    runner = Runner(a, batch_size=2, progress=False)  # sorts queries by length across batches
    stock = runner.score(ims, texts, answers)
    edited = runner.score(ims, texts, answers, intervention=edit)
    for q in (0, 2, 3):
        np.testing.assert_allclose(edited[q], stock[q], atol=1e-6)
    assert not np.allclose(edited[1], stock[1])


def test_random_indices():
    rng = np.random.default_rng(0)
    idx = random_token_indices(64, 10, rng)
    assert len(set(idx)) == 10 and idx.max() < 64
    assert len(random_token_indices(5, 10, rng)) == 5
