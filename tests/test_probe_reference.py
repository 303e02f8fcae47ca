"""The streamed closed-form probes (``fit_and_score``: batched image prefixes, hooks, one-pass
statistics) against the plain reference (each image alone on the full prompt, transformers'
hidden states, features stored, ``lstsq`` and a direct LDA): the same accuracy at every site.

The tiny random models' probes are near chance (InternVL's at chance), which makes the accuracies a
fingerprint of the features: any change in which token's features are taken (a shift by one token,
the CLS kept in place of a patch) moves them by several tokens' worth, far beyond the tolerance."""

import numpy as np
import pytest
from PIL import Image

from vlmloc.probes import ProbeSettings, fit_and_score, sites
from vlmloc.probes.reference import reference_fit_and_score

TASK = "Describe the image."
# Same features up to float noise (batching, left padding, prefix vs full prompt): only a token whose
# two best classes nearly tie can flip. Allow two flipped tokens per site and axis.
FLIPS = 2


def _images(n, seed):
    rng = np.random.default_rng(seed)
    sizes = [(64, 64), (96, 64), (64, 120), (150, 70)]  # InternVL: 1 to several tiles per image
    return [
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in (sizes * n)[:n]
    ]


@pytest.mark.parametrize("family", ["llava", "internvl", "qwen2_5_vl"])
def test_streamed_probes_equal_the_plain_reference(adapters, family):
    a = adapters[family]
    train, test = _images(8, 0), _images(3, 1)
    settings = ProbeSettings(
        task_text=TASK,
        methods=("ridge", "lda"),
        random_control=False,
        shuffled_control=False,
        untrained_control=False,
        batch_size=3,
        validation_fraction=0,
    )  # all 8 train images, as the reference
    fast = {
        (r["method"], r["site"]): r
        for r in fit_and_score(a, train, test, settings).summary
        if r["split"] == "test"
    }
    ref = {
        (r["method"], r["site"]): r
        for r in reference_fit_and_score(a, train, test, ("ridge", "lda"), TASK).summary
    }
    assert set(fast) == set(ref) == {(m, s.name) for m in ("ridge", "lda") for s in sites(a)}
    for key, r in ref.items():
        f = fast[key]
        assert f["variant"] == "true" and f["n_tokens"] == r["n_tokens"], key
        for axis in ("acc_row", "acc_col"):
            assert abs(f[axis] - r[axis]) <= FLIPS / r["n_tokens"] + 1e-12, (
                key,
                axis,
                f[axis],
                r[axis],
            )
