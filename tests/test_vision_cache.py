"""The per-job vision cache: the tower runs once per view for a job of many conditions, the rows
are bit-identical with and without it, its byte bound holds, and a hook on the tower bypasses it."""

import pandas as pd
import pytest
import torch
from test_experiment_layer import SETTINGS, _job, _samples

from vlmloc.experiments import get_experiment, run_shard
from vlmloc.interventions import mean_visual_embedding
from vlmloc.runner import Runner
from vlmloc.vision_cache import VisionCache


@pytest.fixture
def samples(tmp_path):
    # a wide image: the tiny InternVL tiles it (several views per image)
    return _samples(tmp_path, sizes=((160, 120), (90, 200), (300, 100), (420, 140)))


def _n_views(adapter, samples):
    return sum(
        len(adapter.layout(int(w), int(h)).views)
        for w, h in zip(samples["width"], samples["height"], strict=True)
    )


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_a_job_runs_the_tower_once_per_view_and_gives_the_same_rows(adapters, samples, family):
    a = adapters[family]
    mean = mean_visual_embedding(a, list(samples["image_path"]))
    experiment = get_experiment(
        "token_ablation"
    )  # baseline, object+p, register, IG, random: 10+ conditions
    plain = run_shard(experiment, _job(a, samples, SETTINGS, mean))
    cache = VisionCache.from_mb(64)
    with cache.installed(a):
        cached = run_shard(experiment, _job(a, samples, SETTINGS, mean))
    pd.testing.assert_frame_equal(plain, cached)  # every answer, bit for bit
    assert cached["condition"].nunique() >= 10
    assert cache.views_computed == _n_views(a, samples)  # once per view of the job
    assert cache.hits > 5 * cache.views_computed
    assert "forward" not in a.vision_tower.__dict__  # the stock forward is back


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_the_bound_holds_and_evicted_views_are_recomputed(adapters, samples, family):
    a = adapters[family]
    images = list(samples["image_path"])
    texts = [["Is there a red circle in the image?"] * len(images)]
    expected = Runner(a, batch_size=2, progress=False).generate_conditions(
        images, texts, [3], [None]
    )
    one_view = VisionCache(1 << 30)
    with one_view.installed(a):
        Runner(a, batch_size=1, progress=False).generate_conditions(
            images[:1], [texts[0][:1]], [3], [None]
        )
    per_view = one_view.bytes / len(a.layout(160, 120).views)
    cache = VisionCache(int(2.5 * per_view))  # room for two views
    for _ in range(2):
        with cache.installed(a):
            got = Runner(a, batch_size=2, progress=False).generate_conditions(
                images, texts, [3], [None]
            )
        assert got == expected
        assert cache.bytes <= cache.max_bytes and len(cache) <= 2
    assert cache.views_computed == 2 * _n_views(a, samples)  # evicted: computed again


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_a_hook_on_the_tower_sees_every_run(adapters, samples, family):
    """The probes hook the tower's blocks: a cache hit would skip them, so the cache stands aside."""
    a = adapters[family]
    images = list(samples["image_path"])[:2]
    texts = [["Is there a red circle in the image?"] * 2]
    seen = []
    handle = a.vision_layers[0].register_forward_hook(lambda m, args, out: seen.append(1))
    cache = VisionCache.from_mb(64)
    try:
        with cache.installed(a):
            for _ in range(3):
                Runner(a, batch_size=2, progress=False).generate_conditions(
                    images, texts, [2], [None]
                )
    finally:
        handle.remove()
    assert len(seen) == 3 and cache.calls == 0 and len(cache) == 0


def test_the_stock_forward_is_back_after_an_error(adapters):
    a = adapters["llava"]
    with pytest.raises(RuntimeError, match="boom"), VisionCache.from_mb(8).installed(a):
        assert "forward" in a.vision_tower.__dict__
        raise RuntimeError("boom")
    assert "forward" not in a.vision_tower.__dict__


def test_zero_bytes_is_off(adapters):
    a = adapters["llava"]
    size = a.model.config.vision_config.image_size
    cache = VisionCache(0)
    with cache.installed(a):
        first, second = (a.image_features(torch.ones(1, 3, size, size)) for _ in range(2))
    assert torch.equal(first, second)
    assert cache.calls == cache.hits == len(cache) == cache.bytes == 0
