"""The paper models' published architectures (``vlmloc.models.real_configs``) and the random-weight
models built from them at the real width (``vlmloc.models.real_width``): the parameter counts of
the full-depth configs against the published checkpoint sizes and against a model built on the
meta device, the values that set the width, the depth cut, the tokenizer filled to the real
length, and (slow) one family at real width with one decoder layer, each fast path against its
reference."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from vlmloc.models import real_configs
from vlmloc.models.real_configs import REAL_CONFIGS, SOURCES, Sourced, config, param_count

MODELS = sorted(REAL_CONFIGS)


# ---- published sizes ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_full_depth_parameter_count_is_the_published_size(name):
    """Exact where a checkpoint index gives its bytes (LLaVA-1.5-7B, InternVL-3.5-8B), else the
    hub's rounded size (13.4B, 8.29B)."""
    published = REAL_CONFIGS[name]["published_params"].value
    count = param_count(name)
    if isinstance(published, int):
        assert count == published
    else:  # shown rounded to three significant digits
        assert f"{count / 1e9:.3g}" == f"{published / 1e9:.3g}"
    # the paper's names for them: 7B, 13B, 8B (InternVL-3.5-8B is 8.5B) and 8.3B
    paper = {"llava15_7b": 7, "llava15_13b": 13, "internvl35_8b": 8, "qwen25_vl_7b": 8}[name]
    assert int(count / 1e9) == paper


@pytest.mark.parametrize("name", MODELS)
def test_analytic_count_equals_the_model_built_on_meta(name):
    """The transformers model built from ``hf_config`` (real width) holds exactly the parameters
    the shapes give, at full depth and cut to 2 + 2 layers: every width value reaches the model."""
    from vlmloc.models.real_width import meta_param_count

    assert meta_param_count(name) == param_count(name)
    assert meta_param_count(name, 2, 2) == param_count(name, 2, 2)
    assert param_count(name, 2, 2) < param_count(name) / 4


def test_counts_move_with_each_width_value(monkeypatch):
    """The count reads the values: one more key-value head, or a q/k norm, changes it."""
    base = param_count("internvl35_8b", 2, 2)
    text = dict(REAL_CONFIGS["internvl35_8b"]["text"])
    text["num_key_value_heads"] = Sourced(9, "reduced")
    monkeypatch.setitem(REAL_CONFIGS["internvl35_8b"], "text", text)
    assert param_count("internvl35_8b", 2, 2) - base == 2 * 2 * 4096 * 128
    text["qk_norm"] = Sourced(False, "reduced")
    assert param_count("internvl35_8b", 2, 2) - base == 2 * 2 * 4096 * 128 - 2 * 2 * 128


# ---- the values ----------------------------------------------------------------------------------
def test_every_value_names_a_source():
    def walk(node, path):
        if isinstance(node, Sourced):
            assert node.source in SOURCES, path
            return 1
        if isinstance(node, dict):
            return sum(walk(v, f"{path}.{k}") for k, v in node.items())
        return 0

    for name in MODELS:
        assert walk({k: v for k, v in REAL_CONFIGS[name].items() if k != "family"}, name) >= 35
    with pytest.raises(KeyError, match="unknown source"):
        real_configs.S(1, "a blog")
    assert "Qwen3-8B" in real_configs.source_of("internvl35_8b", "text.head_dim")


@pytest.mark.parametrize(
    "name, hidden, heads, kv, head_dim, mlp, vocab, theta",
    [
        ("llava15_7b", 4096, 32, 32, 128, 11008, 32064, 1e4),
        ("llava15_13b", 5120, 40, 40, 128, 13824, 32064, 1e4),
        ("internvl35_8b", 4096, 32, 8, 128, 12288, 151936, 1e6),
        ("qwen25_vl_7b", 3584, 28, 4, 128, 18944, 152064, 1e6),
    ],
)
def test_published_widths(name, hidden, heads, kv, head_dim, mlp, vocab, theta):
    t = config(name)["text"]
    assert (t["hidden_size"], t["num_attention_heads"], t["num_key_value_heads"]) == (
        hidden,
        heads,
        kv,
    )
    assert (t["head_dim"], t["intermediate_size"], t["vocab_size"]) == (head_dim, mlp, vocab)
    assert t["rope_theta"] == theta
    assert t["qk_norm"] == (name == "internvl35_8b")  # Qwen3 normalises each head's q and k
    tok = config(name)["tokenizer"]
    assert tok["base_size"] + len(tok["added"]) <= vocab  # the embedding's padding rows


def test_vision_geometry():
    llava, internvl, qwen = (config(n) for n in ("llava15_7b", "internvl35_8b", "qwen25_vl_7b"))
    v = llava["vision"]  # CLIP ViT-L/14-336: 24 x 24 tokens, features of the second-to-last layer
    assert (v["image_size"], v["patch_size"], v["hidden_size"], v["num_hidden_layers"]) == (
        336,
        14,
        1024,
        24,
    )
    assert llava["model"]["vision_feature_layer"] == -2
    v = internvl["vision"]  # InternViT-300M, 448 px tiles, pixel shuffle 0.5: 16 x 16 per tile
    assert (v["image_size"], v["patch_size"], v["hidden_size"], v["num_hidden_layers"]) == (
        448,
        14,
        1024,
        24,
    )
    assert internvl["model"]["downsample_ratio"] == 0.5 and internvl["options"]["max_tiles"] == 6
    v = qwen["vision"]  # window attention, full attention in every 8th block, 2 x 2 merge
    assert (v["patch_size"], v["spatial_merge_size"], v["hidden_size"], v["num_hidden_layers"]) == (
        14,
        2,
        1280,
        32,
    )
    assert v["fullatt_block_indexes"] == [7, 15, 23, 31] and v["window_size"] == 112


def test_depth_cut_keeps_the_width():
    full, cut = config("qwen25_vl_7b"), config("qwen25_vl_7b", 2, 2)
    assert cut["text"]["num_hidden_layers"] == 2 and cut["vision"]["num_hidden_layers"] == 2
    assert cut["vision"]["fullatt_block_indexes"] == [1]  # windowed block 0, full block 1
    for key in ("hidden_size", "num_key_value_heads", "vocab_size", "intermediate_size"):
        assert cut["text"][key] == full["text"][key]
    assert config("qwen25_vl_7b")["vision"]["fullatt_block_indexes"] == [7, 15, 23, 31]
    assert config("llava15_7b", 3)["vision"]["num_hidden_layers"] == 24
    with pytest.raises(ValueError, match="layers must be 1..32"):
        config("llava15_7b", 33)
    with pytest.raises(ValueError, match="vision_layers"):
        config("llava15_7b", 2, 0)
    with pytest.raises(ValueError, match="unknown paper model"):
        config("llava15_70b")


def test_hf_config_carries_the_values():
    from vlmloc.models.real_width import hf_config

    c = hf_config("internvl35_8b", 2, 2)
    t = c.text_config
    assert (t.num_key_value_heads, t.head_dim, t.vocab_size, t.num_hidden_layers) == (
        8,
        128,
        151936,
        2,
    )
    assert not c.tie_word_embeddings and not t.tie_word_embeddings
    assert c.image_seq_length == 256 and c.image_token_id == 151671
    assert c.vision_config.attention_bias and c.vision_config.image_size == [448, 448]
    q = hf_config("qwen25_vl_7b", 2, 2)
    assert q.text_config.rope_parameters["mrope_section"] == [16, 24, 24]
    assert q.vision_config.fullatt_block_indexes == [1] and q.vision_config.depth == 2
    assert hf_config("llava15_13b", 1, 2).text_config.hidden_size == 5120


# ---- the tokenizer -------------------------------------------------------------------------------
def test_placeholder_tokenizer_has_the_real_length():
    """Without the real files: the task vocabulary plus placeholders up to the real tokenizer's
    length; prompts never encode to a placeholder, and every id decodes to its own text."""
    from vlmloc.models.real_width import tokenizer_for

    fast, kind = tokenizer_for("llava15_7b")
    assert len(fast) == 32002 and "placeholders" in kind
    ids = fast("USER: <image>\nIs there a red circle in the image? ASSISTANT: Yes")["input_ids"]
    assert ids[0] == fast.bos_token_id and fast.convert_tokens_to_ids("<image>") in ids
    assert max(ids) < 1000  # the trained tokens, not placeholders
    texts = [fast.decode([i]) for i in (31000, 31001, 32001)]
    assert texts == ["~31000~", "~31001~", "~32001~"]


@pytest.fixture(scope="module")
def hub_dirs():
    """The families' real tokenizer folders (``make tokenizers``; fetched when missing)."""
    from vlmloc.models import hub_tokenizers as hub

    try:
        return hub.fetch(log=lambda *_: None)
    except hub.TokenizersUnavailable as e:
        if hub.required():
            pytest.fail(f"real tokenizers required (CI / VLMLOC_TOKENIZERS=required): {e}")
        pytest.skip(f"real tokenizers unavailable: {e}")


@pytest.mark.parametrize("name", MODELS)
def test_real_tokenizer_has_the_published_added_tokens(hub_dirs, name):
    """The hub tokenizer ``make tokenizers`` rebuilds has the real length and the added tokens at
    the ids ``real_configs`` publishes (two tables from separate sources agree), and fits the
    model's vocabulary; another family's tokenizer is refused."""
    from vlmloc.models.real_width import find_real_tokenizer, tokenizer_for

    family = REAL_CONFIGS[name]["family"]
    folder = find_real_tokenizer(family)
    assert folder == hub_dirs[family]
    fast, kind = tokenizer_for(name, folder)
    tok = config(name)["tokenizer"]
    assert len(fast) == tok["base_size"] + len(tok["added"]) <= config(name)["text"]["vocab_size"]
    assert "real tokenizer" in kind
    other = "internvl" if family != "internvl" else "llava"
    with pytest.raises(ValueError, match="published"):
        tokenizer_for(name, hub_dirs[other])


# ---- one family at real width ----------------------------------------------------------------------
CATS = ["red circle", "blue square", "green triangle"]


@pytest.fixture(scope="module")
def real_llava(tmp_path_factory):
    """LLaVA-1.5-7B at its real width (hidden 4096, 32 heads, MLP 11008, vocabulary 32064, CLIP
    ViT-L/14-336), 1 decoder layer and 2 vision layers (LLaVA reads the second-to-last); saved in
    bfloat16 (half the disk), loaded in float32."""
    from vlmloc.models import load_adapter
    from vlmloc.models.real_width import build_real_width, find_real_tokenizer

    folder = tmp_path_factory.mktemp("real_llava")
    tokenizer = find_real_tokenizer("llava")  # the real one where make tokenizers wrote it
    path, _ = build_real_width("llava15_7b", folder, 1, dtype="bfloat16", tokenizer=tokenizer)
    return load_adapter("llava", path, dtype="float32")


def _sample(tmp_path):
    rng = np.random.default_rng(0)
    w, h = 200, 150
    path = tmp_path / "im.png"
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    from vlmloc.data.coco import encode_mask

    mask = np.zeros((h, w), dtype=bool)
    mask[40:90, 50:120] = True
    row = {
        "sample_id": "s0",
        "image_id": 0,
        "category": CATS[0],
        "image_path": str(path),
        "width": w,
        "height": h,
        "bbox_x": 50.0,
        "bbox_y": 40.0,
        "bbox_w": 70.0,
        "bbox_h": 50.0,
        "size_bucket": "small",
        "mask_rle": encode_mask(mask)["counts"],
    }
    return pd.DataFrame([row])


@pytest.mark.slow
def test_real_width_llava_fast_paths_equal_their_references(real_llava, tmp_path):
    """At LLaVA-1.5-7B's width (float32): the shared-prefix generation with heads zeroed after
    the image (and the gold answer's nll, head ablation's score), and mediation's patched heads,
    against one whole generate / forward each. Head 31 is the last 128-wide slice of the
    4096-wide attention; the logits are 32,064 wide."""
    from vlmloc.experiments import ShardJob
    from vlmloc.experiments.base import Condition, run_conditions
    from vlmloc.experiments.mediation import mediate_pair
    from vlmloc.experiments.reference import mediate_pair_reference, run_conditions_naive
    from vlmloc.interventions import HeadZero, mean_visual_embedding
    from vlmloc.runner import Runner
    from vlmloc.tasks import task_prompt

    a = real_llava
    assert a.model.config.text_config.hidden_size == 4096 and a.num_heads == 32
    assert a.model.get_input_embeddings().weight.shape == (32064, 4096)
    samples = _sample(tmp_path)
    row = samples.iloc[0].to_dict()
    layout = a.layout(row["width"], row["height"])
    assert layout.n_tokens == 576
    mean = mean_visual_embedding(a, [row["image_path"]])
    job = ShardJob(
        a,
        Runner(a, batch_size=4, progress=False),
        samples,
        CATS,
        {},
        {"localization": 3, "list": 3, "binary": 2},
        mean,
        progress=False,
    )
    conds = [
        Condition("baseline", {}, tasks=("binary",), score_gold=True),
        Condition(
            "heads",
            {},
            HeadZero([(0, 0), (0, 31)], "post_image"),
            tasks=("binary",),
            score_gold=True,
        ),
    ]
    key = ["condition", "task", "sample_id"]
    fast = run_conditions("t", conds, job).sort_values(key).reset_index(drop=True)
    naive = run_conditions_naive("t", conds, job).sort_values(key).reset_index(drop=True)
    assert list(fast["answer"]) == list(naive["answer"])
    np.testing.assert_allclose(naive["gold_nll"], fast["gold_nll"], atol=1e-4)
    nll = dict(zip(naive["condition"], naive["gold_nll"], strict=True))
    assert abs(nll["heads"] - nll["baseline"]) > 1e-4  # the edits reach the score

    text = task_prompt("binary", row["category"], CATS)
    items = [(text, a.gold_tokens("binary", row, text))]
    px = job.runner.pixels(row["image_path"])
    base = torch.zeros_like(px)
    heads = [(0, 0), (0, 31)]
    got = mediate_pair(a, px, base, layout, items, "post_image", 64, heads)[0]
    ref = mediate_pair_reference(a, px, base, layout, items, "post_image", heads)[0]
    assert abs(got["source"] - ref["source"]) < 1e-4 and abs(got["base"] - ref["base"]) < 1e-4
    np.testing.assert_allclose(got["patched"], ref["patched"], atol=1e-4)
    assert np.abs(ref["patched"] - ref["base"]).max() > 1e-5  # patching a head moves the score
