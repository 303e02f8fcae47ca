"""Positional probes (paper sec. 3.2): features at the right tokens of tiny random models, the
one-pass closed form against a direct fit, and the probes and controls on features built to
encode position or nothing."""

import numpy as np
import pytest
import torch
from PIL import Image

from vlmloc.probes import (
    ProbeScores,
    ProbeSettings,
    SGDProbes,
    Site,
    StreamingRidge,
    TokenLabels,
    fit_and_score,
    paper_scale_forwards,
    probe_targets,
    select_views,
    shuffled_positions,
    sites,
    stage_features,
)

TASK = "Describe the image."


def _images(sizes=((160, 120), (90, 200), (300, 100))):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def _hooks(adapter):
    mods = [*adapter.vision_layers, adapter.projector, *adapter.decoder_layers]
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in mods)


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_features_are_the_visual_tokens_hidden_states(adapters, family):
    """Every site's features equal the stock model's hidden states at the visual tokens, run on
    each image alone with the FULL prompt (the probes run the image prefix only, three images
    of different tile counts in one left-padded batch); labels are the layout's (view, row, col)."""
    a = adapters[family]
    images = _images()
    list(stage_features(a, images[:1], TASK))  # transformers adds hooks of its own at a first forward
    before = _hooks(a)
    (batch,) = list(stage_features(a, images, TASK, batch_size=3))
    assert _hooks(a) == before  # ours are gone
    names = [s.name for s in sites(a)]
    assert set(batch.features) == set(names) and len(names) == len(a.vision_layers) + 1 + a.num_layers
    vis_lab, llm_lab = batch.labels["vision"], batch.labels["llm"]
    lo_llm = lo_vis = 0
    for i, im in enumerate(images):
        enc = a.encode([im], [TASK])
        with torch.inference_mode():
            out = a.model(**enc.inputs, output_hidden_states=True)
            vis = a.vision_tower(pixel_values=enc.inputs["pixel_values"], output_hidden_states=True)
            proj = a.image_features(enc.inputs["pixel_values"])
        pos = enc.image_positions[0]
        n = len(pos)
        table = enc.layouts[0].token_table()
        views = [v.name for v in enc.layouts[0].views]
        sl = slice(lo_llm, lo_llm + n)
        assert (llm_lab.image[sl] == i).all()
        assert llm_lab.row[sl].tolist() == [t["row"] for t in table]
        assert llm_lab.col[sl].tolist() == [t["col"] for t in table]
        assert [views[v] for v in llm_lab.view[sl].tolist()] == [t["view"] for t in table]
        for layer in range(a.num_layers):
            got = batch.features[f"llm.{layer}"][sl]
            if layer == a.num_layers - 1:  # transformers reports the last layer after the final norm
                got = a.language_model.norm(got)
            torch.testing.assert_close(got, out.hidden_states[layer + 1][0, pos], atol=2e-4, rtol=1e-4)
        torch.testing.assert_close(batch.features["projector"][sl], proj, atol=1e-5, rtol=1e-5)
        patches = vis.hidden_states[1][:, 1:]
        m = patches.shape[0] * patches.shape[1]
        for layer in range(len(a.vision_layers)):
            ref = vis.hidden_states[layer + 1][:, 1:].reshape(-1, patches.shape[-1])
            torch.testing.assert_close(batch.features[f"vision.{layer}"][lo_vis : lo_vis + m], ref, atol=1e-5, rtol=1e-5)
        g = a.vision_patch_grid
        assert vis_lab.row[lo_vis : lo_vis + m].tolist() == [p // g for p in range(g * g)] * patches.shape[0]
        lo_llm, lo_vis = lo_llm + n, lo_vis + m
    assert lo_llm == len(llm_lab) and lo_vis == len(vis_lab)


def test_internvl_backbone_patch_is_part_of_its_llm_token(adapters):
    """InternVL's positions before the pixel shuffle: backbone patch (R, C) of a view is one of
    the four patches the shuffle merges into LLM token (R // 2, C // 2) of the same view."""
    a = adapters["internvl"]
    assert a.vision_merge == 2 and a.vision_patch_grid == 2 * a.grid
    seen = {}
    handle = a.projector.register_forward_pre_hook(lambda _m, args: seen.__setitem__("x", args[0].detach()))
    try:
        last = f"vision.{len(a.vision_layers) - 1}"
        (batch,) = list(stage_features(a, _images(((160, 120),)), TASK, site_names=[last]))
    finally:
        handle.remove()
    merged = seen["x"].reshape(-1, seen["x"].shape[-1])
    vis, lab, llm = batch.features[last], batch.labels["vision"], batch.labels["llm"]
    width = vis.shape[1]
    assert merged.shape == (len(llm), 4 * width)
    for t in range(0, len(llm), 7):
        mine = (lab.view == llm.view[t]) & (lab.row // 2 == llm.row[t]) & (lab.col // 2 == llm.col[t])
        expected = vis[mine]
        chunks = merged[t].reshape(4, width)
        assert len(expected) == 4
        for c in chunks:  # each chunk of the merged token is one of its four patches
            assert torch.isclose(expected, c, atol=1e-6).all(1).any()


def test_views_select_the_global_or_the_local_tokens(adapters):
    a = adapters["internvl"]
    (batch,) = list(stage_features(a, _images(((300, 100),)), TASK, site_names=["projector", "vision.0"]))
    n_views = len(a.layout(300, 100).views)
    assert n_views > 1
    glob, loc = select_views(batch, "global"), select_views(batch, "local")
    assert glob.features["projector"].shape[0] == a.grid**2 and (glob.labels["llm"].kind == 0).all()
    assert loc.features["projector"].shape[0] == (n_views - 1) * a.grid**2 and (loc.labels["llm"].kind == 1).all()
    assert glob.features["vision.0"].shape[0] == a.vision_patch_grid**2
    # the global view is last: its tokens are the batch's last
    torch.testing.assert_close(glob.features["projector"], batch.features["projector"][-(a.grid**2) :])


# ---- probes on features built to encode position, or nothing ---------------------------------

GRID, DIM = 6, 24


def _synthetic(n_images, seed, encode=True, first_image=0, grid=GRID, dim=DIM):
    """Per image grid x grid tokens; features = an embedding of the row + one of the column +
    noise (``encode``), or noise alone."""
    g = torch.Generator().manual_seed(seed)
    emb = torch.Generator().manual_seed(1234)  # the same position code for train and test
    E_row, E_col = torch.randn(grid, dim, generator=emb), torch.randn(grid, dim, generator=emb)
    r, c = torch.arange(grid * grid) // grid, torch.arange(grid * grid) % grid
    row, col = r.repeat(n_images), c.repeat(n_images)
    image = torch.arange(first_image, first_image + n_images).repeat_interleave(grid * grid)
    zeros = torch.zeros_like(row)
    X = torch.randn(len(row), dim, generator=g)
    if encode:
        X = 0.2 * X + E_row[row] + E_col[col]
    return X, TokenLabels(image, zeros, zeros, row, col, grid, grid)


def _fit(method, X, lab, shuffled=False, batches=5, epochs=1):
    probe = SGDProbes(lr=0.05, minibatch=1024) if method == "sgd" else StreamingRidge()
    chunks = torch.tensor_split(torch.arange(len(X)), batches)
    for _ in range(epochs if method == "sgd" else 1):
        for idx in chunks:
            targets = probe_targets(lab.select(idx), shuffled, seed=3)
            if method == "sgd":
                probe.partial_fit("s", X[idx], targets)
            else:
                probe.update("s", X[idx], targets)
    if method == "ridge":
        probe.solve(1e-4)
    elif method == "lda":
        probe.solve_lda(1e-4)
    return probe


def _summary(probe, X, lab):
    scores = ProbeScores()
    scores.update(Site("s", "llm", 0), lab, probe.predict("s", X))
    return {r["variant"]: r for r in scores.summary_rows()}


def test_closed_form_equals_a_direct_least_squares_fit():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(500, 12, generator=g) * torch.linspace(0.1, 5, 12) + 3
    y = torch.randint(0, 5, (500,), generator=g)
    targets = lambda idx: {"row": (y[idx], 5)}  # noqa: E731
    parts = torch.tensor_split(torch.arange(500), 4)
    whole = StreamingRidge()
    for idx in parts:
        whole.update("s", X[idx], targets(idx))
    Xb = torch.cat([X, torch.ones(500, 1)], 1).double()
    Y = torch.nn.functional.one_hot(y, 5).double()
    direct = torch.linalg.lstsq(Xb, Y).solution
    torch.testing.assert_close(whole.solve(0.0)["s"]["row"], direct, atol=1e-9, rtol=1e-7)
    # ridge: (X^T X + lam I') W = X^T Y with the bias unpenalised, lam relative to the mean diagonal
    lam = 0.1 * float((Xb[:, :-1] ** 2).sum(0).mean())
    penalty = torch.diag(torch.tensor([lam] * 12 + [0.0], dtype=torch.float64))
    ridge = torch.linalg.solve(Xb.T @ Xb + penalty, Xb.T @ Y)
    torch.testing.assert_close(whole.solve(0.1)["s"]["row"], ridge, atol=1e-9, rtol=1e-7)
    # shards merged = one pass over all images; float32 products stay close
    a, b = StreamingRidge(), StreamingRidge(compute_dtype=torch.float32)
    for k, idx in enumerate(parts):
        (a if k % 2 else b).update("s", X[idx], targets(idx))
    torch.testing.assert_close(a.merge(b).solve(0.0)["s"]["row"], direct, atol=1e-4, rtol=1e-4)


def test_lda_from_the_streamed_statistics_equals_a_direct_fit():
    """Class means, pooled within-class covariance (regularised) and priors computed on the
    stacked features give the same weights, and the same predictions, as the one-pass solve."""
    g = torch.Generator().manual_seed(1)
    X = (torch.randn(600, 10, generator=g) * torch.linspace(0.2, 4, 10) + 5).double()
    y = torch.randint(0, 4, (600,), generator=g)
    y[y == 3] = 2  # an empty class: never predicted
    probe = StreamingRidge()
    for idx in torch.tensor_split(torch.arange(600), 3):
        probe.update("s", X[idx], {"row": (y[idx], 4)})
    got = probe.solve_lda(0.01)["s"]["row"]
    seen = [0, 1, 2]
    means = torch.stack([X[y == k].mean(0) for k in seen], 1)
    centred = torch.cat([X[y == k] - X[y == k].mean(0) for k in seen])
    cov = centred.T @ centred / (600 - 4)
    cov += 0.01 * cov.diagonal().mean() * torch.eye(10, dtype=torch.float64)
    W = torch.linalg.solve(cov, means)
    bias = -0.5 * (means * W).sum(0) + torch.log(torch.tensor([(y == k).float().mean() for k in seen], dtype=torch.float64))
    torch.testing.assert_close(got[:-1, seen], W, atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(got[-1, seen], bias, atol=1e-9, rtol=1e-7)
    assert got[-1, 3] == -float("inf")
    pred = probe.predict("s", X)["row"]
    assert torch.equal(pred, torch.tensor(seen)[(X @ W + bias).argmax(1)])


@pytest.mark.parametrize("method", ["ridge", "lda", "sgd"])
def test_probes_reach_100_percent_on_features_that_encode_position(method):
    X, lab = _synthetic(60, seed=0)
    Xt, labt = _synthetic(20, seed=1, first_image=60)
    s = _summary(_fit(method, X, lab, epochs=3), Xt, labt)["true"]
    assert s["acc_row"] == 1.0 and s["acc_col"] == 1.0 and s["acc_both"] == 1.0


@pytest.mark.parametrize("method", ["ridge", "lda", "sgd"])
def test_probes_stay_at_chance_on_random_features(method):
    X, lab = _synthetic(300, seed=0, encode=False)
    Xt, labt = _synthetic(100, seed=1, encode=False, first_image=300)
    s = _summary(_fit(method, X, lab, epochs=2), Xt, labt)["true"]
    for axis in ("row", "col"):
        assert abs(s[f"acc_{axis}"] - 1 / GRID) < 0.04, s
    assert abs(s["acc_both"] - 1 / GRID**2) < 0.015, s


@pytest.mark.parametrize("method", ["ridge", "lda", "sgd"])
def test_shuffled_positions_control_stays_at_chance(method):
    """Trained on per-image shuffled positions of features that DO encode position, the control
    heads predict neither the true nor the test images' shuffled positions better than chance,
    while the heads trained on true positions reach 100% from the same features.

    The control's predictions are a function of the position, so its accuracy varies with the
    number of grid positions, not of tokens: 16 x 16 positions, chance 1/16, SD about 0.015."""
    grid = 16
    X, lab = _synthetic(50, seed=0, grid=grid, dim=48)
    Xt, labt = _synthetic(30, seed=1, first_image=50, grid=grid, dim=48)
    probe = _fit(method, X, lab, shuffled=True, epochs=2)
    s = _summary(probe, Xt, labt)
    assert s["true"]["acc_both"] == 1.0
    pred = probe.predict("s", Xt)
    row_sh, col_sh = shuffled_positions(labt, seed=3)
    for axis, shuffled in (("row", row_sh), ("col", col_sh)):
        assert abs(s["shuffled"][f"acc_{axis}"] - 1 / grid) < 0.05, s["shuffled"]
        assert abs(float((pred[f"{axis}~shuffled"] == shuffled).float().mean()) - 1 / grid) < 0.05


def test_shuffled_positions_are_a_fixed_permutation_per_image():
    _, lab = _synthetic(4, seed=0)
    row, col = shuffled_positions(lab, seed=3)
    again = shuffled_positions(lab, seed=3)
    assert torch.equal(row, again[0]) and torch.equal(col, again[1])
    per_image = []
    for i in range(4):
        m = lab.image == i
        pairs = sorted(zip(row[m].tolist(), col[m].tolist(), strict=True))
        assert pairs == sorted(zip(lab.row[m].tolist(), lab.col[m].tolist(), strict=True))  # a permutation
        per_image.append((row[m] * GRID + col[m]).tolist())
    assert len({tuple(p) for p in per_image}) == 4  # a different one for each image
    assert not torch.equal(row, lab.row)


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_fit_and_score_runs_every_site_method_and_control(adapters, family):
    a = adapters[family]
    images = _images(((64, 64), (80, 60), (60, 90), (70, 70)))
    settings = ProbeSettings(epochs=2, batch_size=2, views="global", minibatch=512)
    run = fit_and_score(a, images[:3], images[3:], settings)
    expected = {s.name for s in sites(a)} | {"control.random"}
    for method in ("ridge", "lda", "sgd"):
        rows = [r for r in run.summary if r["method"] == method]
        assert {r["site"] for r in rows} == expected
        assert {r["variant"] for r in rows} == {"true", "shuffled"}
        n = {r["site"]: r["n_tokens"] for r in rows if r["variant"] == "true"}
        assert n["projector"] == a.grid**2 and n["vision.0"] == a.vision_patch_grid**2  # one global view
    timing = {t["method"]: t for t in run.timing}
    assert timing["ridge"]["train_forwards"] == timing["lda"]["train_forwards"] == 3
    assert timing["sgd"]["train_forwards"] == 6
    assert {c["kind"] for c in run.cells} == {"global"}
    assert paper_scale_forwards() == {"ridge": 60_000, "lda": 60_000, "sgd": 510_000}


def test_test_images_never_share_the_train_images_random_features(adapters):
    """Random features and shuffled positions are seeded per image index: the test images count on
    after the train images. With the same pictures as train and test, a probe that had seen a
    test image's random features in training would recall their positions (here about 0.4);
    chance is 1/8."""
    a = adapters["llava"]
    images = _images(((64, 64),) * 8)
    settings = ProbeSettings(methods=("ridge",), l2=1e-6, sites=["projector"], batch_size=4)
    run = fit_and_score(a, images, images, settings)
    (control,) = [r for r in run.summary if r["site"] == "control.random" and r["variant"] == "true"]
    assert control["n_tokens"] == 8 * a.grid**2
    for axis in ("row", "col"):
        assert abs(control[f"acc_{axis}"] - 1 / a.grid) < 0.06, control


def test_hooks_are_removed_when_the_forward_fails(adapters):
    a = adapters["llava"]
    list(stage_features(a, _images()[:1], TASK))
    before = _hooks(a)

    def fail(*_):
        raise RuntimeError("boom")

    handle = a.decoder_layers[0].register_forward_pre_hook(fail)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            list(stage_features(a, _images()[:1], TASK))
    finally:
        handle.remove()
    assert _hooks(a) == before


def test_tiles_alone_on_a_model_without_tiles_is_refused(adapters):
    with pytest.raises(ValueError, match="no local views"):
        fit_and_score(adapters["llava"], _images()[:1], _images()[:1], ProbeSettings(views="local"))


def test_tiles_alone_with_a_batch_without_tiles(adapters):
    """views "local" with batch 1: the first image has no tiles, so its batch has no tokens to
    probe; it is skipped, and only the tiles' tokens are scored."""
    a = adapters["internvl"]
    single, wide = _images(((64, 64),))[0], _images(((300, 100),))[0]
    assert len(a.layout(*single.size).views) == 1 and len(a.layout(*wide.size).views) > 1
    settings = ProbeSettings(views="local", batch_size=1, epochs=1, random_control=False, sites=["projector"])
    run = fit_and_score(a, [single, wide, wide], [wide], settings)
    tiles = sum(v.n_tokens for v in a.layout(*wide.size).views if v.kind == "local")
    rows = [r for r in run.summary if r["variant"] == "true"]
    assert {r["method"] for r in rows} == {"ridge", "lda", "sgd"} and all(r["n_tokens"] == tiles for r in rows)
