"""The third family, Qwen2.5-VL, on a tiny random-weight model and on the real checkpoint's grid:
its preprocessing against transformers' processor, M-RoPE position ids against the model's own
``get_rope_index`` (whole sequences, and a suffix continuing a cached prefix), the token geometry
on a non-square dynamic grid, the JSON ``bbox_2d`` answers in the resized frame, the template
mask, the window order of the vision tower, and every experiment run through the experiment
layer. The runner's parity with the stock ``generate`` is tests/test_runner.py's, parametrised
with this family too."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from vlmloc.data.coco import encode_mask
from vlmloc.experiments import ShardJob, get_experiment, run_shard
from vlmloc.experiments.containerization import grow_object
from vlmloc.geometry import mask_grids, object_token_indices
from vlmloc.interventions import ReplaceVisualTokens, mean_visual_embedding
from vlmloc.models import ADAPTERS
from vlmloc.models.qwen2_5_vl import Qwen2_5_VLAdapter, smart_resize
from vlmloc.runner import Runner
from vlmloc.scoring import EXCLUDED, check_complete, score_rows
from vlmloc.tasks import task_prompt

FAMILY = "qwen2_5_vl"
PRE = {
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "merge_size": 2,
    "temporal_patch_size": 2,
}
REAL = Qwen2_5_VLAdapter(
    None, None, PRE
)  # the 7B checkpoint's preprocessing: layouts and boxes need no model
TEXTS = [
    "Please provide the bounding box coordinates of the red circle.",
    "Is there a dog in the image?",
    "List all objects in the image. Choose only from red circle, blue square.",
]


def _images(sizes=((160, 120), (90, 200), (300, 100))):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


@pytest.fixture(scope="module")
def qwen(adapters):
    return adapters[FAMILY]


# ---- preprocessing and layout ----------------------------------------------------------------------
def test_resize_and_patches_are_the_processors(qwen):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as reference

    for h, w in [(480, 640), (120, 160), (200, 90), (17, 1500), (3000, 4000), (56, 56), (29, 29)]:
        assert smart_resize(h, w) == reference(h, w, 28, 3136, 12845056), (h, w)
    processor = Qwen2VLImageProcessorPil(
        min_pixels=qwen.min_pixels,
        max_pixels=qwen.max_pixels,
        image_mean=PRE["image_mean"],
        image_std=PRE["image_std"],
    )
    ims = _images()
    ref = processor(images=ims, return_tensors="pt")
    got = qwen.pixel_inputs(
        [qwen.pixel_values(im) for im in ims], [qwen.layout(*im.size) for im in ims]
    )
    assert torch.equal(got["image_grid_thw"], ref["image_grid_thw"])
    torch.testing.assert_close(got["pixel_values"], ref["pixel_values"].float(), atol=1e-5, rtol=0)
    for im, (_, gh, gw) in zip(ims, got["image_grid_thw"].tolist(), strict=True):
        v = qwen.layout(*im.size).views[0]
        assert (v.rows, v.cols) == (gh // 2, gw // 2)


def test_real_dynamic_grid():
    lay = REAL.layout(640, 480)  # resized to 644 x 476: 23 x 17 tokens of 28 px
    (v,) = lay.views
    assert (
        (v.rows, v.cols, lay.n_tokens) == (17, 23, 391)
        and v.region == (0, 0, 640, 480)
        and v.kind == "global"
    )
    assert REAL.layout(480, 640).views[0].rows == 23  # portrait: the grid turns
    assert (
        REAL.layout(4000, 3000).n_tokens <= 16384 and REAL.layout(20, 20).n_tokens == 4
    )  # max / min pixels
    assert (
        not REAL.has_local_views
        and not Qwen2_5_VLAdapter.makes_local_views({})
        and not REAL.independent_views
    )
    table = lay.token_table()
    assert len(table) == 391 and table[24] == {
        "token": 24,
        "view": "image",
        "kind": "global",
        "row": 1,
        "col": 1,
        "x0": 640 / 23,
        "y0": 480 / 17,
        "x1": 2 * 640 / 23,
        "y1": 2 * 480 / 17,
    }


def test_object_tokens_and_rings_on_a_non_square_grid():
    """A 640 x 480 image: 17 rows x 23 cols of 27.8 x 28.2 px cells."""
    lay = REAL.layout(640, 480)
    cw, ch = 640 / 23, 480 / 17
    mask = np.zeros((480, 640), bool)
    mask[int(3 * ch) + 2 : int(5 * ch) - 2, int(10 * cw) + 2 : int(13 * cw) - 2] = (
        True  # rows 3-4, cols 10-12
    )
    idx = object_token_indices(lay, mask)
    assert list(idx) == [r * 23 + c for r in (3, 4) for c in (10, 11, 12)]
    grown = mask_grids(lay, mask, 1)["image"]
    assert grown.shape == (17, 23) and grown.sum() == 4 * 5 and grown[2:6, 9:14].all()
    targets, sources = grow_object(lay, mask, 1, np.random.default_rng(0))
    ring = sorted(
        r * 23 + c for r in range(2, 6) for c in range(9, 14) if not (r in (3, 4) and 10 <= c <= 12)
    )
    assert sorted(targets) == ring and set(sources) <= set(idx)
    # at the corner the ring is cut by the grid's border (rows x cols, not a square)
    corner = np.zeros((480, 640), bool)
    corner[-5:, -5:] = True
    assert list(object_token_indices(lay, corner)) == [16 * 23 + 22]
    assert sorted(grow_object(lay, corner, 1, np.random.default_rng(0))[0]) == [
        15 * 23 + 21,
        15 * 23 + 22,
        16 * 23 + 21,
    ]
    tall = REAL.layout(300, 900)  # 11 x 32 resized to 308 x 896: 32 rows, 11 cols
    assert (tall.views[0].rows, tall.views[0].cols) == (32, 11)
    bottom = np.zeros((900, 300), bool)
    bottom[-1, 0] = True
    assert list(object_token_indices(tall, bottom)) == [31 * 11]


# ---- boxes -----------------------------------------------------------------------------------------
def test_box_answers_are_pixels_of_the_resized_image():
    reply = '```json\n[\n\t{"bbox_2d": [322, 119, 644, 476], "label": "red circle"}\n]\n```'
    p = REAL.parse_box(reply, 640, 480)  # 644 x 476 frame -> 640 x 480 image
    assert p.status == "ok" and p.n_boxes == 1
    np.testing.assert_allclose(p.box, (320, 120, 640, 480), atol=0.01)
    two = (
        '[{"bbox_2d": [10, 20, 30, 40], "label": "a"}, {"bbox_2d": [50, 60, 70, 80], "label": "b"}]'
    )
    assert (
        REAL.parse_box(two, 644, 476).box == (10, 20, 30, 40)
        and REAL.parse_box(two, 644, 476).n_boxes == 2
    )
    assert REAL.parse_box("[100, 50, 20, 10]", 644, 476).box == (
        20,
        10,
        100,
        50,
    )  # corners in the wrong order
    assert (
        REAL.parse_box('{"bbox_2d": [0, 0, 700, 100]}', 644, 476).status == "out_of_range"
    )  # x beyond 644
    assert (
        REAL.parse_box('{"bbox_2d": [0, 0, 600, 490]}', 644, 476).status == "out_of_range"
    )  # y beyond 476
    assert REAL.parse_box('{"bbox_2d": [0, 0, 648, 478]}', 644, 476).box == (
        0,
        0,
        644,
        476,
    )  # 1% slack, clipped
    for bad in (
        "I cannot find it.",
        '{"bbox_2d": [1, 2, 3]}',
        '{"bbox_2d": []}',
        "",
        '{"label": "cat"}',
    ):
        assert REAL.parse_box(bad, 640, 480).status == "unparsed", bad
    assert REAL.parse_box('{"bbox_2d": [1, 2, 3, 4]}', 0, 480).status == "unparsed"  # never raises
    assert (
        REAL.parse_box('{"bbox_2d": [1, 2, 3, 4]}', 1000, 2).status == "unparsed"
    )  # aspect beyond 200


@pytest.mark.parametrize("size", [(640, 480), (333, 1000), (90, 200), (1999, 1001)])
def test_gold_writer_and_parser_round_trip(size):
    w, h = size
    rw, rh = REAL.resized(w, h)
    rng = np.random.default_rng(w)
    for _ in range(20):
        x1, x2 = sorted(rng.uniform(0, w, 2))
        y1, y2 = sorted(rng.uniform(0, h, 2))
        text = REAL.format_box((x1, y1, x2, y2), w, h)
        assert json.loads(text.removeprefix("```json").removesuffix("```"))[0]["bbox_2d"][
            2
        ] == round(x2 * rw / w)
        p = REAL.parse_box(text, w, h)
        assert (
            p.status == "ok"
        )  # integers of the resized frame: off by at most half a resized pixel
        np.testing.assert_allclose(p.box, (x1, y1, x2, y2), atol=0.5 * max(w / rw, h / rh) + 1e-9)
        assert REAL.parse_box(REAL.format_box(p.box, w, h), w, h).box == pytest.approx(p.box)


def test_template_mask(qwen):
    """Content = the box's four numbers (and "Yes"); template = the JSON around them and EOS."""
    row = {
        "bbox_x": 10,
        "bbox_y": 20,
        "bbox_w": 30,
        "bbox_h": 12,
        "width": 80,
        "height": 60,
        "category": "red circle",
    }
    gold = qwen.gold_answer("localization", row)  # 80 x 60 -> 84 x 56: [10, 19, 42, 30]
    assert gold.text == '```json\n[\n\t{"bbox_2d": [10, 19, 42, 30]}\n]\n```'
    loc = qwen.gold_tokens("localization", row, task_prompt("localization", "red circle", []))
    text = [qwen.tokenizer.decode([i]) for i in loc.ids]
    content = "".join(t for t, c in zip(text, loc.content, strict=True) if c)
    template = "".join(t for t, c in zip(text, loc.content, strict=True) if not c)
    assert (
        content == "10194230" and loc.ids[-1] == qwen.tokenizer.eos_token_id and not loc.content[-1]
    )
    assert (
        template.replace(qwen.tokenizer.eos_token, "")
        == '```json\n[\n\t{"bbox_2d": [, , , ]}\n]\n```'
    )
    yes = qwen.gold_tokens("binary", row, task_prompt("binary", "red circle", []))
    assert (
        "".join(qwen.tokenizer.decode([i]) for i, c in zip(yes.ids, yes.content, strict=True) if c)
        == "Yes"
    )


# ---- positions (M-RoPE) ----------------------------------------------------------------------------
def _rope(qwen, ids, mask, layouts):
    grid = qwen.image_grid_thw(layouts)
    return qwen.model.model.get_rope_index(
        ids,
        mm_token_type_ids=(ids == qwen.image_token_id).int(),
        image_grid_thw=grid,
        attention_mask=mask,
    )[0]


def test_position_ids_are_the_models_rope_index(qwen):
    ims = _images()
    enc = qwen.encode(ims, TEXTS)  # left padding
    ids, mask = enc.inputs["input_ids"], enc.inputs["attention_mask"]
    pos = qwen.position_ids(ids, mask, enc.layouts)
    rope, _ = qwen.model.model.get_rope_index(
        ids, enc.inputs["mm_token_type_ids"], enc.inputs["image_grid_thw"], attention_mask=mask
    )
    assert pos.shape == (4, 3, ids.shape[1]) and torch.equal(pos[1:], rope)
    assert torch.equal(
        pos[0], (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    )  # generate's text row
    for row, lay in enumerate(enc.layouts):  # a visual token at (r, c) is at (p, p + r, p + c)
        v, p = lay.views[0], enc.image_positions[row]
        t, hh, ww = (pos[k, row, p] for k in (1, 2, 3))
        r, c = np.divmod(np.arange(v.n_tokens), v.cols)
        assert (
            (t == t[0]).all()
            and torch.equal(hh - t[0], torch.tensor(r))
            and torch.equal(ww - t[0], torch.tensor(c))
        )


def test_suffix_positions_continue_the_cached_prefix(qwen):
    """The runner's split (prefix left-padded, each question left-padded after it): the suffix's
    positions equal the model's own ``get_rope_index`` of each prompt alone, and continue at the
    prefix's largest position + 1 (generate's ``rope_deltas``)."""
    ims = _images()
    runner = Runner(qwen, progress=False)
    layouts = [qwen.layout(*im.size) for im in ims]
    (prefix, prefix_mask), ((suffix, suffix_mask),) = runner._split_prefixes(layouts, [TEXTS])
    full, mask = torch.cat([prefix, suffix], 1), torch.cat([prefix_mask, suffix_mask], 1)
    n_prefix = prefix.shape[1]
    whole = qwen.position_ids(full, mask, layouts)
    got = qwen.position_ids(full, mask, layouts, n_prefix)
    assert torch.equal(got, whole[..., n_prefix:])
    assert torch.equal(qwen.position_ids(prefix, prefix_mask, layouts), whole[..., :n_prefix])
    for row, (im, text) in enumerate(zip(ims, TEXTS, strict=True)):
        alone = qwen.encode([im], [text]).inputs
        ref = _rope(qwen, alone["input_ids"], alone["attention_mask"], layouts[row : row + 1])[:, 0]
        real = mask[row].bool()
        assert torch.equal(whole[1:, row, real], ref)
        start = int(whole[1:, row, :n_prefix].max()) + 1
        s = got[1:, row, suffix_mask[row].bool()]
        assert torch.equal(s, (start + torch.arange(s.shape[1])).expand(3, -1))


def test_one_d_positions_would_change_the_answer(qwen):
    """The parity tests can fail: the tiny model's logits depend on M-RoPE's 2-D image positions."""
    enc = qwen.encode(_images()[:1], TEXTS[:1])
    ids, mask = enc.inputs["input_ids"], enc.inputs["attention_mask"]
    with torch.inference_mode():
        stock = qwen.model(**enc.inputs).logits[0, -1]
        ours = qwen.model(
            **enc.inputs, position_ids=qwen.position_ids(ids, mask, enc.layouts)
        ).logits[0, -1]
        flat = qwen.model(**enc.inputs, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits[
            0, -1
        ]
    torch.testing.assert_close(ours, stock, atol=1e-5, rtol=0)
    assert (flat - stock).abs().max() > 1e-3


# ---- structure ------------------------------------------------------------------------------------
def test_vision_tokens_undo_the_window_order(qwen):
    """A block's input is the patch embedding in the tower's window order; ``vision_tokens``
    gives each image's patches row-major, as the patch embedding of the raster patches."""
    ims = _images()
    pixels = [qwen.pixel_values(im) for im in ims]
    layouts = [qwen.layout(*im.size) for im in ims]
    seen = {}
    handle = qwen.vision_layers[0].register_forward_pre_hook(
        lambda _m, args: seen.__setitem__("x", args[0])
    )
    try:
        with torch.inference_mode():
            qwen.image_features(pixels)
            got = qwen.vision_tokens(seen["x"], layouts)
            refs = []
            for px in pixels:
                _, c, h, w = px.shape
                raster = (
                    px[0].reshape(c, h // 14, 14, w // 14, 14).permute(1, 3, 0, 2, 4)
                )  # (gh, gw, C, 14, 14)
                raster = (
                    raster[:, :, :, None].expand(-1, -1, -1, 2, -1, -1).reshape(-1, c * 2 * 14 * 14)
                )
                refs.append(qwen.vision_tower.patch_embed(raster))
    finally:
        handle.remove()
    assert got.shape[0] == sum(lay.n_tokens * 4 for lay in layouts)
    torch.testing.assert_close(got, torch.cat(refs))
    assert not torch.equal(seen["x"], got)  # the windows do reorder the tiny model's patches


def test_projector_site_edits_tokens_in_sequence_order(qwen):
    ims = _images()
    enc = qwen.encode(ims, TEXTS)
    pixels = [qwen.pixel_values(im) for im in ims]
    sizes = [lay.n_tokens for lay in enc.layouts]
    chosen = [np.array([0, 7]), np.array([sizes[1] - 1]), np.array([12])]
    value = torch.full((qwen.model.config.text_config.hidden_size,), 3.0)
    with torch.inference_mode():
        ref = qwen.image_features(pixels)
        with ReplaceVisualTokens(chosen, value)(qwen, enc):
            got = qwen.image_features(pixels)
        assert torch.equal(qwen.image_features(pixels), ref)  # the hook is gone
    offsets = np.cumsum([0, *sizes[:-1]])
    changed = torch.zeros(sum(sizes), dtype=torch.bool)
    changed[[int(o + i) for o, c in zip(offsets, chosen, strict=True) for i in c]] = True
    assert torch.equal(got[~changed], ref[~changed]) and (got[changed] == 3.0).all()
    assert not qwen.vision_tower._forward_hooks


def test_the_workflow_asks_the_adapter_class():
    """What the workflow decides per family comes from the adapter classes, with no model."""
    assert ADAPTERS[FAMILY] is Qwen2_5_VLAdapter
    assert not ADAPTERS["llava"].makes_local_views({}) and ADAPTERS["internvl"].makes_local_views(
        {"max_tiles": 6}
    )
    assert not ADAPTERS["internvl"].makes_local_views({"max_tiles": 1})


def test_flops_geometry_of_the_checkpoint(tiny_dirs, tmp_path):
    g = Qwen2_5_VLAdapter.flops_geometry(tiny_dirs[FAMILY], {})
    assert (g.layers, g.hidden, g.heads, g.views, g.tokens_per_view, g.vision_seq) == (
        2,
        64,
        4,
        1,
        391,
        4 * 391,
    )
    # the hub's config.json: text settings at the top level (Qwen2.5-VL-7B-Instruct's dimensions)
    hub = {
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "vocab_size": 152064,
        "vision_config": {
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "out_hidden_size": 3584,
            "patch_size": 14,
            "spatial_merge_size": 2,
        },
    }
    (tmp_path / "config.json").write_text(json.dumps(hub))
    g = Qwen2_5_VLAdapter.flops_geometry(tmp_path, {})
    llm = g.linear + 2 * 3584 * 152064  # decoder blocks + embedding and head: 7.6 B
    vision = g.vision_linear  # the tower and the merger: 0.67 B
    assert 7.0e9 < llm < 7.7e9 and 0.6e9 < vision < 0.7e9 and g.attention_width == 3584


# ---- every experiment through the experiment layer -----------------------------------------------------
CATS = ["red circle", "blue square", "green triangle"]
MAX_NEW = {"localization": 6, "list": 5, "binary": 2}
SETTINGS = {
    "token_ablation": {
        "paddings": [0, 1],
        "register": {"n_std": 2.0, "scope": "image"},
        "random": {"k": [8], "seeds": [0]},
        "integrated_gradients": {
            "k": [8],
            "steps": 4,
            "target": "logit",
            "importance": "l1",
            "method": "riemann_trapezoid",
        },
    },
    "containerization": {
        "paddings": [1],
        "seeds": [0],
        "scales": [0, 1],
        "scale_grid": "global",
        "tasks": ["localization"],
    },
    "token_shuffle": {"modes": ["full", "object"], "seeds": [0]},
    "attention_knockout": {
        "fig3_window": 1,
        "fig12_windows": [1],
        "stride": None,
        "all_layers": True,
        "paddings": [0],
        "random_control": True,
        "random_seeds": [0],
        "random_outside_padding": 1,
        "translated_control": True,
        "translated_seeds": [0],
    },
    "mediation": {
        "n_pairs": 2,
        "seed": 0,
        "tasks": ["localization", "binary"],
        "positions": "post_image",
        "heads_per_batch": 8,
    },
    "head_ablation": {
        "settings": ["localization", "random"],
        "proportions": [0.25],
        "random_seeds": [0],
        "lowest_task": "localization",
        "positions": "post_image",
        "pool": "same",
        "ablation": "zero",
    },
    "view_ablation": {
        "views": ["global", "local", "both"],
        "paddings": [0],
        "multi_view_only": True,
    },
}


def _samples(tmp_path):
    rows = []
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(160, 120), (90, 200), (300, 100)]):
        path, removed = tmp_path / f"im{i}.png", tmp_path / f"removed{i}.png"
        pixels = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
        mask = np.zeros((h, w), dtype=bool)
        x0, y0 = w // 4, h // 3
        mask[y0 : y0 + h // 3, x0 : x0 + w // 3] = True
        pixels[mask] = 255
        Image.fromarray(pixels).save(removed)
        ys, xs = np.nonzero(mask)
        rows.append(
            {
                "sample_id": f"s{i}",
                "image_id": i,
                "category": CATS[i % 3],
                "image_path": str(path),
                "removed_path": str(removed),
                "width": w,
                "height": h,
                "bbox_x": float(xs.min()),
                "bbox_y": float(ys.min()),
                "bbox_w": float(xs.max() + 1 - xs.min()),
                "bbox_h": float(ys.max() + 1 - ys.min()),
                "size_bucket": "small",
                "mask_rle": encode_mask(mask)["counts"],
            }
        )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("experiment", list(SETTINGS))
def test_every_experiment_runs_on_the_tiny_model(qwen, tmp_path, experiment):
    samples = _samples(tmp_path)
    mean = mean_visual_embedding(qwen, list(samples["image_path"]))
    upstream = {}
    if experiment == "head_ablation":  # its ranking: the gathered mediation of the same samples
        from vlmloc.experiments.head_ranking import head_scores

        job = ShardJob(
            qwen,
            Runner(qwen, progress=False),
            samples,
            CATS,
            SETTINGS["mediation"],
            MAX_NEW,
            mean,
            present=[[c] for c in samples["category"]],
            progress=False,
        )
        heads = head_scores(run_shard(get_experiment("mediation"), job), 0.0)
        heads.to_parquet(tmp_path / "heads.parquet")
        upstream = {"mediation": str(tmp_path / "heads.parquet")}
    job = ShardJob(
        qwen,
        Runner(qwen, batch_size=2, progress=False),
        samples,
        CATS,
        SETTINGS[experiment],
        MAX_NEW,
        mean,
        {"norm_mean": 0.0, "norm_std": 1.0},
        present=[[c] for c in samples["category"]],
        progress=False,
        upstream=upstream,
    )
    exp = get_experiment(experiment)
    if experiment == "view_ablation":
        assert (
            exp.skip_reason(qwen) == "qwen2_5_vl model has no local views (every image is one view)"
        )
        return
    assert exp.skip_reason(qwen) is None
    raw = run_shard(exp, job)
    assert len(raw) and set(raw["sample_id"]) <= set(samples["sample_id"])
    check_complete(raw, samples["sample_id"])
    if experiment != "mediation":  # mediation's rows are teacher-forced scores, not replies
        scored = score_rows(raw, samples, FAMILY, CATS)
        assert len(scored) == len(raw) and set(scored["status"].dropna()) <= {
            "ok",
            "unparsed",
            "out_of_range",
            "excluded",
        }
    else:
        pairs = raw[raw["condition"] != EXCLUDED]
        assert np.isfinite(pairs["nll"]).all() and pairs["sample_id"].nunique() == 2
    if experiment == "token_ablation":
        assert {"object+0", "object+1", "ig_localization_k8", "ig_list_k8", "random_k8_s0"} <= set(
            raw["condition"]
        )


def test_probes_run_on_dynamic_grids(qwen):
    """Every site of the tiny model, images of several sizes (grids of several shapes): the
    classes per axis are the largest grid's."""
    from vlmloc.probes import ProbeSettings, fit_and_score

    train, test = (
        _images([(160, 120), (90, 200), (300, 100), (120, 120), (200, 150)]),
        _images([(100, 140), (150, 90)]),
    )
    run = fit_and_score(
        qwen,
        train,
        test,
        ProbeSettings(methods=("ridge",), untrained_control=True, validation_fraction=0.2),
    )
    summary = pd.DataFrame(run.summary)
    sites = set(summary["site"])
    assert {"vision.0", "vision.1", "projector", "llm.0", "llm.1"} <= sites
    rows = summary[
        (summary["site"] == "projector")
        & (summary["variant"] == "true")
        & (summary["split"] == "test")
    ]
    assert (rows["grid_rows"] == 7).all() and (
        rows["grid_cols"] == 11
    ).all()  # 90 x 200: 7 rows; 300 x 100: 11 cols
    vision = summary[(summary["site"] == "vision.0") & (summary["split"] == "test")]
    assert (vision["grid_rows"] == 14).all() and (vision["grid_cols"] == 22).all()


# ---- the workflow ------------------------------------------------------------------------------------
def test_adapter_classes_import_without_torch():
    """The workflow imports the adapter classes while it plans (no torch there)."""
    import subprocess
    import sys

    code = (
        "import sys; from vlmloc.models import ADAPTERS; "
        "assert not ADAPTERS['qwen2_5_vl'].makes_local_views({}) and ADAPTERS['internvl'].makes_local_views({}); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_paper_scope_with_qwen_dry_runs(workflow_dir):
    """config/paper.yaml with the Qwen2.5-VL entry: its jobs sized from params_b (bf16 weights of
    8.29 B: one 80 GB GPU), the view ablation skipped with its reason."""
    import math

    from conftest import run_snakemake
    from test_slurm import model_job, resources_by_job

    (workflow_dir / "qwen.yaml").write_text("run: {models: [llava15_7b, qwen25_vl_7b]}\n")
    dry = run_snakemake(workflow_dir, "-n", "--configfile", "config/paper.yaml", "qwen.yaml")
    text = dry.stdout + dry.stderr
    assert "view_ablation: qwen25_vl_7b skipped (qwen2_5_vl model without local views" in text
    res = resources_by_job(text)
    job = model_job(res, "run_experiment", "qwen25_vl_7b", experiment="token_ablation")
    assert (
        job["gpu"] == 1
        and job["mem_mb"] == math.ceil((4 + 1.1 * 8.29 * 2) * 1024)
        and job["runtime"] >= 15
    )
    assert not any("qwen25_vl_7b" in w and "view_ablation" in w for _, w in res)
