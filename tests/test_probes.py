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
    probe_images,
    probe_targets,
    select_views,
    shuffled_positions,
    sites,
    stage_features,
    untrained_adapter,
    validation_split,
)
from vlmloc.tables.probes import paper_scale_forwards

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
    list(
        stage_features(a, images[:1], TASK)
    )  # transformers adds hooks of its own at a first forward
    before = _hooks(a)
    (batch,) = list(stage_features(a, images, TASK, batch_size=3))
    assert _hooks(a) == before  # ours are gone
    names = [s.name for s in sites(a)]
    assert (
        set(batch.features) == set(names) and len(names) == len(a.vision_layers) + 1 + a.num_layers
    )
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
            if (
                layer == a.num_layers - 1
            ):  # transformers reports the last layer after the final norm
                got = a.language_model.norm(got)
            torch.testing.assert_close(
                got, out.hidden_states[layer + 1][0, pos], atol=2e-4, rtol=1e-4
            )
        torch.testing.assert_close(batch.features["projector"][sl], proj, atol=1e-5, rtol=1e-5)
        patches = vis.hidden_states[1][:, 1:]
        m = patches.shape[0] * patches.shape[1]
        for layer in range(len(a.vision_layers)):
            ref = vis.hidden_states[layer + 1][:, 1:].reshape(-1, patches.shape[-1])
            torch.testing.assert_close(
                batch.features[f"vision.{layer}"][lo_vis : lo_vis + m], ref, atol=1e-5, rtol=1e-5
            )
        g = a.vision_patch_grid
        assert (
            vis_lab.row[lo_vis : lo_vis + m].tolist()
            == [p // g for p in range(g * g)] * patches.shape[0]
        )
        lo_llm, lo_vis = lo_llm + n, lo_vis + m
    assert lo_llm == len(llm_lab) and lo_vis == len(vis_lab)


def test_internvl_backbone_patch_is_part_of_its_llm_token(adapters):
    """InternVL's positions before the pixel shuffle: backbone patch (R, C) of a view is one of
    the four patches the shuffle merges into LLM token (R // 2, C // 2) of the same view."""
    a = adapters["internvl"]
    assert a.vision_merge == 2 and a.vision_patch_grid == 2 * a.grid
    seen = {}
    handle = a.projector.register_forward_pre_hook(
        lambda _m, args: seen.__setitem__("x", args[0].detach())
    )
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
        mine = (
            (lab.view == llm.view[t]) & (lab.row // 2 == llm.row[t]) & (lab.col // 2 == llm.col[t])
        )
        expected = vis[mine]
        chunks = merged[t].reshape(4, width)
        assert len(expected) == 4
        for c in chunks:  # each chunk of the merged token is one of its four patches
            assert torch.isclose(expected, c, atol=1e-6).all(1).any()


def test_views_select_the_global_or_the_local_tokens(adapters):
    a = adapters["internvl"]
    (batch,) = list(
        stage_features(a, _images(((300, 100),)), TASK, site_names=["projector", "vision.0"])
    )
    n_views = len(a.layout(300, 100).views)
    assert n_views > 1
    glob, loc = select_views(batch, "global"), select_views(batch, "local")
    assert glob.features["projector"].shape[0] == a.grid**2 and (glob.labels["llm"].kind == 0).all()
    assert (
        loc.features["projector"].shape[0] == (n_views - 1) * a.grid**2
        and (loc.labels["llm"].kind == 1).all()
    )
    assert glob.features["vision.0"].shape[0] == a.vision_patch_grid**2
    # the global view is last: its tokens are the batch's last
    torch.testing.assert_close(
        glob.features["projector"], batch.features["projector"][-(a.grid**2) :]
    )


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
    bias = -0.5 * (means * W).sum(0) + torch.log(
        torch.tensor([(y == k).float().mean() for k in seen], dtype=torch.float64)
    )
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
        assert pairs == sorted(
            zip(lab.row[m].tolist(), lab.col[m].tolist(), strict=True)
        )  # a permutation
        per_image.append((row[m] * GRID + col[m]).tolist())
    assert len({tuple(p) for p in per_image}) == 4  # a different one for each image
    assert not torch.equal(row, lab.row)


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_fit_and_score_runs_every_site_method_and_control(adapters, family):
    a = adapters[family]
    images = _images(((64, 64), (80, 60), (60, 90), (70, 70)))
    settings = ProbeSettings(
        epochs=2,
        batch_size=2,
        views="global",
        minibatch=512,
        untrained_control=True,
        untrained_methods=("lda",),
    )
    run = fit_and_score(a, images[:3], images[3:], settings)  # 2 train images, 1 validation image
    expected = {s.name for s in sites(a)} | {"control.random"}
    for method in ("ridge", "lda", "sgd"):
        for split, n_images in (("test", 1), ("validation", 1)):
            rows = [r for r in run.summary if r["method"] == method and r["split"] == split]
            assert {r["site"] for r in rows} == expected
            assert {r["variant"] for r in rows} == {"true", "shuffled"} | (
                {"untrained"} if method == "lda" else set()
            )
            n = {r["site"]: r["n_tokens"] for r in rows if r["variant"] == "true"}
            assert (
                n["projector"] == n_images * a.grid**2
                and n["vision.0"] == n_images * a.vision_patch_grid**2
            )
    # the untrained control: the model's sites, no random-feature site (it does not depend on the model)
    untrained = [r for r in run.summary if r["variant"] == "untrained" and r["split"] == "test"]
    assert {r["site"] for r in untrained} == expected - {"control.random"}
    timing = {(t["method"], t["variant"]): t for t in run.timing}
    assert set(timing) == {
        ("ridge", "true"),
        ("lda", "true"),
        ("sgd", "true"),
        ("lda", "untrained"),
    }
    assert (
        timing["ridge", "true"]["train_forwards"]
        == timing["lda", "untrained"]["train_forwards"]
        == 2
    )
    assert (
        timing["sgd", "true"]["train_forwards"] == 4
        and timing["sgd", "true"]["validation_forwards"] == 1
    )
    assert {c["kind"] for c in run.cells} == {"global"}
    assert paper_scale_forwards() == {"ridge": 60_000, "lda": 60_000, "sgd": 510_000}


def test_test_images_never_share_the_train_images_random_features(adapters):
    """Random features and shuffled positions are seeded per image index: the test images count on
    after the train images. With the same pictures as train and test, a probe that had seen a
    test image's random features in training would recall their positions (here about 0.4);
    chance is 1/8."""
    a = adapters["llava"]
    images = _images(((64, 64),) * 8)
    settings = ProbeSettings(
        methods=("ridge",),
        l2=1e-6,
        sites=["projector"],
        batch_size=4,
        validation_fraction=0,
        untrained_control=False,
    )
    run = fit_and_score(a, images, images, settings)
    (control,) = [
        r
        for r in run.summary
        if r["site"] == "control.random" and r["variant"] == "true" and r["split"] == "test"
    ]
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
    settings = ProbeSettings(
        views="local",
        batch_size=1,
        epochs=1,
        random_control=False,
        untrained_control=False,
        sites=["projector"],
    )
    run = fit_and_score(a, [single, wide, wide], [wide], settings)
    tiles = sum(v.n_tokens for v in a.layout(*wide.size).views if v.kind == "local")
    rows = [r for r in run.summary if r["variant"] == "true" and r["split"] == "test"]
    assert {r["method"] for r in rows} == {"ridge", "lda", "sgd"} and all(
        r["n_tokens"] == tiles for r in rows
    )


# ---- the control that can fail: the same architecture, re-initialised ------------------------

TOYS = {"llava": "checkpoints/toy_llava", "internvl": "checkpoints/toy_internvl"}


@pytest.fixture(scope="module")
def toys():
    """The committed trained toy checkpoints (the test fixtures' tiny models are themselves
    random-init models of seed 0, so re-initialising them under seed 0 gives them back)."""
    from conftest import ROOT

    from vlmloc.models import load_adapter

    return {f: load_adapter(f, ROOT / p, dtype="float32", device="cpu") for f, p in TOYS.items()}


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_untrained_model_is_reinitialised_and_reproducible(toys, family):
    """The re-initialised model is the same class and config with new weights: every weight
    matrix of the projector and the LLM differs from the trained one, the same seed gives the
    same weights, another seed other weights; the global random state is untouched, and the new
    adapter's sites are the new model's modules."""
    a = toys[family]
    state = torch.get_rng_state()
    u, again, other = untrained_adapter(a, 0), untrained_adapter(a, 0), untrained_adapter(a, 1)
    assert torch.equal(torch.get_rng_state(), state)
    assert type(u.model) is type(a.model) and u.model.config.to_dict() == a.model.config.to_dict()
    trained, sd, sd2, sd3 = (
        a.model.state_dict(),
        u.model.state_dict(),
        again.model.state_dict(),
        other.model.state_dict(),
    )
    assert sd.keys() == trained.keys()
    assert all(torch.equal(sd[k], sd2[k]) for k in sd)
    matrices = [
        k for k, v in sd.items() if v.ndim == 2 and ("language_model" in k or "projector" in k)
    ]
    assert len(matrices) > 10
    assert not any(torch.equal(sd[k], trained[k]) for k in matrices)
    assert not any(torch.equal(sd[k], sd3[k]) for k in matrices)
    assert (
        u.decoder_layers[0] is u.model.model.language_model.layers[0] and u.tokenizer is a.tokenizer
    )
    assert not u.model.training


def _untrained_rows(adapter, sites):
    train, test = probe_images("generated", "generated", 40, 10, seed=3)
    settings = ProbeSettings(
        methods=("lda",),
        untrained_control=True,
        random_control=False,
        shuffled_control=False,
        batch_size=10,
        sites=sites,
        validation_fraction=0.2,
    )
    run = fit_and_score(adapter, train, test, settings)
    return {(r["variant"], r["site"]): r for r in run.summary if r["split"] == "test"}


def test_untrained_control_decodes_position_from_the_architecture(toys):
    """What the re-initialised toys decode (LDA, 32 train + 8 validation + 10 test shapes scenes;
    test accuracy, mean of row and column, measured: LLaVA untrained vision.0 / projector / llm.3
    0.42 / 0.33 / 0.46 against chance 0.125, trained 0.90 / 1.00 / 1.00; InternVL untrained
    0.096 (chance 1/12) / 0.20 / 0.34 (chance 1/6), trained 1.00 / 1.00 / 1.00):

    - LLaVA (CLIP: a learned position embedding, initialised normal, std 0.02): the untrained
      backbone decodes position far above chance, so this control is not trivially at chance;
    - InternVL (InternViT's position embedding is initialised to zero): its untrained backbone
      carries no position at all (attention without positions is permutation-equivariant) and
      sits at chance, while its untrained LLM decodes some from the raster order (causal
      attention, RoPE) above chance.
    The trained toys decode far more at every site."""
    llava = _untrained_rows(toys["llava"], ["vision.0", "projector", "llm.3"])
    chance = 1 / toys["llava"].grid
    for site in ("vision.0", "projector", "llm.3"):
        assert llava["untrained", site]["acc_mean"] > chance + 0.15, llava["untrained", site]
        assert llava["true", site]["acc_mean"] > llava["untrained", site]["acc_mean"] + 0.3
    a = toys["internvl"]
    internvl = _untrained_rows(a, ["vision.0", "projector", "llm.3"])
    vis = internvl["untrained", "vision.0"]
    assert abs(vis["acc_mean"] - 1 / a.vision_patch_grid) < 0.03, vis  # 0.096 against 0.083
    assert internvl["untrained", "llm.3"]["acc_mean"] > 1 / a.grid + 0.04, internvl[
        "untrained", "llm.3"
    ]
    for site in ("vision.0", "projector", "llm.3"):
        assert internvl["true", site]["acc_mean"] > internvl["untrained", site]["acc_mean"] + 0.3


# ---- the best layer is chosen on validation images held out of the training --------------------


def test_validation_split_is_seeded_disjoint_and_complete():
    fit, val = validation_split(50, 0.2, seed=4)
    assert (
        len(val) == 10
        and len(fit) == 40
        and not set(fit) & set(val)
        and set(fit) | set(val) == set(range(50))
    )
    again, other = validation_split(50, 0.2, seed=4), validation_split(50, 0.2, seed=5)
    assert np.array_equal(val, again[1]) and not np.array_equal(val, other[1])
    assert list(val) != list(range(40, 50))  # a random sample, not the last images
    assert len(validation_split(3, 0.2, 0)[1]) == 1 and len(validation_split(3, 0.0, 0)[1]) == 0
    with pytest.raises(ValueError, match="validation_fraction"):
        validation_split(1, 0.5, 0)


def test_validation_images_are_scored_never_trained_on(adapters, monkeypatch):
    """The images each pass of ``fit_and_score`` streams: training sees the train images less the
    validation ones, the validation pass exactly those, the test pass the test images."""
    import vlmloc.probes.run as run_module

    passes = []
    real = run_module.stage_features

    def recording(adapter, images, *args, **kw):
        passes.append([id(im) for im in images])
        return real(adapter, images, *args, **kw)

    monkeypatch.setattr(run_module, "stage_features", recording)
    a = adapters["llava"]
    train, test = _images(((64, 64),) * 10), _images(((70, 70),) * 2)
    settings = ProbeSettings(
        methods=("lda",),
        sites=["projector"],
        batch_size=5,
        validation_fraction=0.3,
        untrained_control=False,  # its model's passes are the same images again
    )
    run = fit_and_score(a, train, test, settings)
    fit_pass, val_pass, test_pass = (set(p) for p in passes)
    assert len(passes) == 3 and len(val_pass) == 3 and len(fit_pass) == 7
    assert not fit_pass & val_pass and fit_pass | val_pass == {id(im) for im in train}
    assert test_pass == {id(im) for im in test}
    rows = {(r["split"], r["site"]): r for r in run.summary if r["variant"] == "true"}
    assert rows["validation", "projector"]["n_tokens"] == 3 * a.grid**2
    assert rows["test", "projector"]["n_tokens"] == 2 * a.grid**2
    (timing,) = run.timing
    assert (timing["train_forwards"], timing["validation_forwards"], timing["test_forwards"]) == (
        7,
        3,
        2,
    )


def _labels(n_images: int, per_image: int = 16, grid: int = 4) -> TokenLabels:
    image = torch.arange(n_images).repeat_interleave(per_image)
    pos = torch.arange(per_image).repeat(n_images) % (grid * grid)
    zeros = torch.zeros_like(image)
    return TokenLabels(image, zeros, zeros, pos // grid, pos % grid, grid, grid)


def test_layer_accuracy_carries_a_bootstrap_interval_over_images():
    """Half the images fully right, half fully wrong: accuracy 0.5, and the interval is that of a
    mean over images (about +-1.96 x 0.5 / sqrt(n)), not over tokens (16 times as many)."""
    boot = {"resamples": 2000, "level": 0.95, "seed": 0}
    widths = {}
    for n in (40, 400):
        lab = _labels(n)
        right = lab.image % 2 == 0
        pred = {
            "row": torch.where(right, lab.row, (lab.row + 1) % 4),
            "col": torch.where(right, lab.col, (lab.col + 1) % 4),
        }
        scores = ProbeScores()
        scores.update(Site("s", "llm", 0), lab, pred)
        r = scores.summary_rows(boot)[0]
        assert r["acc_mean"] == pytest.approx(0.5) and r["n_images"] == n
        assert (
            r["acc_mean_lo"] < 0.5 < r["acc_mean_hi"] and r["acc_both_lo"] < 0.5 < r["acc_both_hi"]
        )
        widths[n] = r["acc_mean_hi"] - r["acc_mean_lo"]
        assert widths[n] == pytest.approx(2 * 1.96 * 0.5 / np.sqrt(n), rel=0.25)
    assert widths[400] < 0.4 * widths[40]
    # every image right: no spread
    lab = _labels(30)
    scores = ProbeScores()
    scores.update(Site("s", "llm", 0), lab, {"row": lab.row, "col": lab.col})
    r = scores.summary_rows(boot)[0]
    assert r["acc_mean_lo"] == r["acc_mean_hi"] == r["acc_both_lo"] == 1.0
