"""vlmloc.workflow.memory: a model job's GPU memory from its parts, and the batch sizes that fit.
The cache and logits terms are checked against the tensors a model really allocates (on CPU, the
tensors' sizes; no GPU here), the fitting against a plain search."""

import pytest
import torch

from vlmloc.workflow import memory as m
from vlmloc.workload import PAPER_GEOMETRY

PAPER_HUB = {
    "llava-1.5-7b": "llava-hf/llava-1.5-7b-hf",
    "llava-1.5-13b": "llava-hf/llava-1.5-13b-hf",
    "internvl-3.5-8b": "OpenGVLab/InternVL3_5-8B-HF",
}


@pytest.mark.parametrize("family", ["llava", "internvl", "qwen2_5_vl"])
def test_cache_and_logits_terms_are_the_allocated_tensors(adapters, family):
    """A prefill of B rows x T tokens: the key/value cache it returns and its logits are exactly
    the bytes the formula names (InternVL's tiny model has fewer key/value heads than query heads,
    so a formula that counted query heads would fail here)."""
    a = adapters[family]
    text = a.model.config.text_config.to_dict()
    params = sum(p.numel() for p in a.model.parameters())
    dims = m.Dims.of_text_config(text, params, "float32")
    assert dims.weights == sum(p.nbytes for p in a.model.parameters())
    rows, tokens = 3, 17
    ids = torch.randint(5, 50, (rows, tokens))
    with torch.inference_mode():
        out = a.language_model(input_ids=ids, use_cache=True)
        logits = a.model.lm_head(out.last_hidden_state[:, -4:])
    cache = out.past_key_values
    allocated = sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers)
    assert dims.kv_cache(rows, tokens) == allocated
    assert dims.logits(rows, 4) == logits.nbytes + logits.float().nbytes
    if family == "internvl":
        assert text["num_key_value_heads"] < text["num_attention_heads"]


def test_paper_configs_agree_with_the_flop_geometry():
    for paper, hub in PAPER_HUB.items():
        t, g = m.PAPER_TEXT_CONFIGS[hub], PAPER_GEOMETRY[paper]
        assert (t["num_hidden_layers"], t["hidden_size"], t["vocab_size"]) == (
            g["layers"],
            g["hidden"],
            g["vocab"],
        )
    # the docs' figure: LLaVA-13B's bf16 cache for 16 rows of 700 tokens is about 9 GB
    d13 = m.Dims.of_text_config(
        m.PAPER_TEXT_CONFIGS["llava-hf/llava-1.5-13b-hf"], 13.35e9, "bfloat16"
    )
    assert d13.kv_cache(16, 700) / 1e9 == pytest.approx(9.18, abs=0.01)
    # grouped-query attention: InternVL's Qwen3 keeps a quarter of LLaVA-7B's cache per token
    d7 = m.Dims.of_text_config(m.PAPER_TEXT_CONFIGS["llava-hf/llava-1.5-7b-hf"], 7.06e9, "bfloat16")
    d8 = m.Dims.of_text_config(
        m.PAPER_TEXT_CONFIGS["OpenGVLab/InternVL3_5-8B-HF"], 8.5e9, "bfloat16"
    )
    assert d8.kv_cache(1, 1) * 32 / 36 == d7.kv_cache(1, 1) / 4


def test_fit_rows_is_the_largest_count_that_fits():
    dims = m.Dims.of_text_config(
        m.PAPER_TEXT_CONFIGS["llava-hf/llava-1.5-7b-hf"], 7.06e9, "bfloat16"
    )
    shape = {"prefix": 846, "answer": 26, "positions": 26}
    for budget_gb in (16, 20, 40, 72):
        budget = budget_gb * 2**30
        plain = max(r for r in range(1, 257) if dims.peak(r, **shape) <= budget)
        assert m.fit_rows(dims, budget, 256, **shape) == plain
        assert m.fit_rows(dims, budget, 3, **shape) == min(3, plain)  # never above the wanted
    # integrated gradients keep every layer for the backward pass: far fewer rows fit
    fwd = m.fit_rows(dims, 72 * 2**30, 256, **shape)
    bwd = m.fit_rows(dims, 72 * 2**30, 256, backward=True, **shape)
    assert 1 <= bwd < fwd / 4
    with pytest.raises(MemoryError, match="more than the 10.0 GiB"):
        m.fit_rows(dims, 10 * 2**30, 8, **shape)  # 13.1 GiB of weights


def test_fit_job_shrinks_only_what_does_not_fit():
    dims = m.Dims.of_text_config(
        m.PAPER_TEXT_CONFIGS["OpenGVLab/InternVL3_5-8B-HF"], 8.5e9, "bfloat16"
    )
    settings = {"integrated_gradients": {"steps": {"localization": 32, "list": 16}}}
    shape = {"prefix": 7 * 256 + 270, "answer": 30, "max_new_tokens": 48}
    roomy = m.fit_job(dims, 1e15, 16, settings, **shape)
    assert roomy == {"batch_size": 16, "internal_batch_size": 32}
    tight = m.fit_job(dims, 40 * 2**30, 16, {**settings, "heads_per_batch": 64}, **shape)
    assert tight["batch_size"] <= 16 and tight["internal_batch_size"] < 32
    assert 1 <= tight["heads_per_batch"] <= 64
    for key, rows in tight.items():  # each fitted size fits, one more row would not
        backward = key == "internal_batch_size"
        kw = {
            "prefix": shape["prefix"],
            "answer": shape["max_new_tokens"] if key == "batch_size" else shape["answer"],
            "positions": shape["answer"],
            "backward": backward,
        }
        assert dims.peak(rows, **kw) <= 40 * 2**30
        if rows < {"batch_size": 16, "internal_batch_size": 32, "heads_per_batch": 64}[key]:
            assert dims.peak(rows + 1, **kw) > 40 * 2**30
