"""The probes' tables and figures from rows built by hand (what each number must be), and the
probes' image sets."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vlmloc.probes.images import probe_images
from vlmloc.tables.probes import (
    best_layer_table,
    best_layers,
    best_llm_layers,
    cell_grid,
    fig11_sites,
    layer_curves,
    layers_by_kind,
    line_breaks,
    method_table,
    with_accuracy,
)

GRID = 4


def _summary(
    model: str,
    llm_acc: list[float],
    method: str = "sgd",
    shuffled: float = 0.25,
    split: str = "test",
    untrained: list[float] | None = None,
    vision: tuple = (0.9, 0.6),
) -> pd.DataFrame:
    """Rows as ``fit_and_score`` writes them for one split: 2 backbone layers, the projector, the
    LLM layers with the given mean accuracy (row = col), the random control, shuffled heads at
    ``shuffled``; with ``untrained``, the re-initialised model's rows (backbone 0.7 / 0.4,
    projector 0.3, LLM layers ``untrained``)."""
    sites = [
        ("vision.0", "vision", 0, vision[0]),
        ("vision.1", "vision", 1, vision[1]),
        ("projector", "projector", 0, 0.5),
    ]
    sites += [(f"llm.{i}", "llm", i, a) for i, a in enumerate(llm_acc)] + [
        ("control.random", "control", 0, 0.26)
    ]
    u = dict(
        zip(
            ["vision.0", "vision.1", "projector"] + [f"llm.{i}" for i in range(len(llm_acc))],
            [0.7, 0.4, 0.3, *(untrained or [])],
            strict=False,
        )
    )
    rows = []
    for name, stage, layer, acc in sites:
        for variant, a in (("true", acc), ("shuffled", shuffled), ("untrained", u.get(name))):
            if (
                stage == "control"
                and variant != "true"
                or variant == "untrained"
                and untrained is None
            ):
                continue
            rows.append(
                {
                    "model": model,
                    "method": method,
                    "site": name,
                    "stage": stage,
                    "layer": layer,
                    "variant": variant,
                    "split": split,
                    "n_tokens": 160,
                    "grid_rows": GRID,
                    "grid_cols": GRID,
                    "acc_row": a,
                    "acc_col": a,
                    "acc_mean": a,
                    "acc_both": a * a,
                    "chance_row": 1 / GRID,
                    "chance_col": 1 / GRID,
                }
            )
    return pd.DataFrame(rows)


def _cells(
    model: str,
    site: str,
    acc_of,
    method: str = "sgd",
    kind: str = "global",
    n: int = 10,
    variant: str = "true",
) -> pd.DataFrame:
    stage, layer = (
        ("projector", 0) if site == "projector" else (site.split(".")[0], int(site.split(".")[1]))
    )
    return pd.DataFrame(
        [
            {
                "model": model,
                "method": method,
                "site": site,
                "stage": stage,
                "layer": layer,
                "variant": variant,
                "kind": kind,
                "row": r,
                "col": c,
                "n": n,
                "acc_row": acc_of(r, c),
                "acc_col": acc_of(r, c),
                "acc_both": acc_of(r, c),
            }
            for r in range(GRID)
            for c in range(GRID)
        ]
    )


def test_best_layer_is_the_llm_peak_beside_both_paper_values():
    summary = pd.concat(
        [_summary("a", [0.3, 0.7, 0.9, 0.8]), _summary("b", [0.4, 0.95, 0.95, 0.5])]
    )
    best = best_llm_layers(summary, "sgd", "acc_mean")
    assert best.to_dict() == {"a": 2, "b": 1}  # a tie goes to the lower layer
    table = best_layer_table(
        summary, {"a": "llava-1.5-7b", "b": ""}, ["sgd"], "acc_mean"
    ).set_index("model")
    a = table.loc["a"]
    assert a["acc_best_llm"] == 0.9 and a["acc_projector"] == 0.5 and a["best_vision_layer"] == 0
    assert (
        a["acc_random_features"] == 0.26
        and a["max_acc_shuffled"] == 0.25
        and a["max_shuffled_over_chance"] == 0
    )
    assert a["max_shuffled_z"] == 0
    assert (a["paper_best_layer_text"], a["paper_best_layer_appendix"]) == (
        12,
        13,
    )  # the paper disagrees with itself
    assert np.isnan(table.loc["b", "paper_best_layer_text"])
    # both-right accuracy is the product here: the same argmax, squared values and chance
    both = best_layer_table(summary, {}, ["sgd"], "acc_both").set_index("model")
    assert (
        both.loc["a", "acc_best_llm"] == pytest.approx(0.81)
        and both.loc["a", "chance_llm"] == 1 / GRID**2
    )


def test_layer_curves_in_processing_order_with_the_shuffled_control():
    c = layer_curves(_summary("a", [0.3, 0.7], shuffled=0.2), "sgd", "acc_mean")
    assert list(c["site"]) == [
        "vision.0",
        "vision.1",
        "projector",
        "llm.0",
        "llm.1",
    ]  # no control row
    assert (c["acc_shuffled"] == 0.2).all() and (c["chance"] == 0.25).all()


def test_line_breaks_against_edge_rows_corners_and_interior():
    edge = (0, GRID - 1)

    def line_break(r, c):  # the first and last columns only
        return 1.0 if c in edge else 0.5

    t = line_breaks(_cells("a", "llm.2", line_break), {"a": ["llm.2"]}, "sgd", "acc_mean").iloc[0]
    assert t["acc_first_col"] == t["acc_last_col"] == t["acc_edge_cols"] == t["acc_corners"] == 1.0
    assert t["acc_edge_rows"] == t["acc_interior"] == 0.5 and t["grid"] == "4x4"
    assert (
        t["diff_cols_vs_rows"] == 0.5 and t["n_edge_cols"] == 4 * 10 and t["n_interior"] == 4 * 10
    )
    assert t["diff_edges_vs_interior"] == pytest.approx(
        0.25
    )  # 4 edge-column cells at 1, 4 edge-row cells at 0.5

    def edge_effect(r, c):  # every edge alike: an edge effect, no line-break effect
        return 1.0 if r in edge or c in edge else 0.5

    e = line_breaks(_cells("a", "llm.2", edge_effect), {"a": ["llm.2"]}, "sgd", "acc_mean").iloc[0]
    assert e["diff_cols_vs_rows"] == 0 and e["diff_edges_vs_interior"] == 0.5
    flat = line_breaks(
        _cells("a", "llm.2", lambda r, c: 0.7), {"a": ["llm.2"]}, "sgd", "acc_mean"
    ).iloc[0]
    assert flat["diff_cols_vs_rows"] == pytest.approx(0) and flat[
        "diff_edges_vs_interior"
    ] == pytest.approx(0)


def test_layers_by_kind_pool_each_kind_of_view():
    cells = pd.concat(
        [
            _cells("a", "llm.0", lambda r, c: 1.0, kind="global", n=10),
            _cells("a", "llm.0", lambda r, c: 0.5, kind="local", n=60),
        ]
    )
    t = layers_by_kind(cells, _summary("a", [0.6]), "acc_mean").set_index("kind")
    assert (
        t.loc["global", "acc"] == 1.0
        and t.loc["local", "acc"] == 0.5
        and t.loc["local", "n_tokens"] == 60 * GRID**2
    )
    assert (t["chance"] == 1 / GRID).all() and (t["stage"] == "llm").all()


def test_cell_grid_puts_each_position_in_place():
    cells = _cells("a", "projector", lambda r, c: (r * GRID + c) / 100)
    g = cell_grid(cells, "a", "sgd", "projector", "global", "acc_both")
    assert (
        g.shape == (GRID, GRID)
        and g[2, 3] == pytest.approx(0.11)
        and g[3, 0] == pytest.approx(0.12)
    )
    with pytest.raises(ValueError, match="no cells"):
        cell_grid(cells, "a", "sgd", "projector", "local", "acc_both")


def test_method_table_costs_and_distance_to_sgd():
    summary = pd.concat([_summary("a", [0.3, 0.7], "sgd"), _summary("a", [0.3, 0.9], "lda")])
    timing = pd.DataFrame(
        [
            {
                "model": "a",
                "method": m,
                "train_passes": p,
                "train_forwards": 10 * p,
                "test_forwards": 4,
                "forward_s": 1.0 * p,
                "probe_s": 0.1,
                "train_s": p + 0.1,
                "test_forward_s": 0.2,
            }
            for m, p in (("sgd", 10), ("lda", 1))
        ]
    )
    t = method_table(summary, timing, "acc_mean").set_index("method")
    assert t.loc["lda", "mean_abs_diff_vs_sgd"] == pytest.approx(
        0.2 / 5
    )  # one of five sites differs by 0.2
    assert np.isnan(t.loc["sgd", "mean_abs_diff_vs_sgd"])
    assert (t.loc["sgd", "paper_scale_forwards"], t.loc["lda", "paper_scale_forwards"]) == (
        510_000,
        60_000,
    )
    assert t.loc["lda", "best_llm_layer"] == 1 and t.loc["sgd", "train_forwards"] == 100


def test_fig11_sites_default_and_chosen_layers():
    summary = _summary("a", [0.3, 0.5, 0.9, 0.8, 0.6, 0.4])
    assert fig11_sites(summary, "a", "sgd", "acc_mean") == [
        "projector",
        "llm.0",
        "llm.2",
        "llm.3",
        "llm.5",
    ]
    assert fig11_sites(summary, "a", "sgd", "acc_mean", [1, 4]) == ["projector", "llm.1", "llm.4"]
    with pytest.raises(ValueError, match="fig11_layers.a"):
        fig11_sites(summary, "a", "sgd", "acc_mean", [6])


def test_unknown_accuracy_is_refused():
    with pytest.raises(ValueError, match="probes.accuracy"):
        with_accuracy(_summary("a", [0.5]), "acc_row")


def test_probe_figures_are_drawn_from_the_rows(tmp_path):
    from vlmloc.figures.probe_figures import plot_fig2, plot_fig11, plot_methods

    summary = pd.concat(
        [_summary("a", [0.3, 0.7, 0.9, 0.8]), _summary("a", [0.3, 0.8, 0.8, 0.7], "lda")]
    )
    cells = pd.concat(
        [
            _cells("a", s, lambda r, c: 0.5 + 0.1 * (c in (0, GRID - 1)), kind=k)
            for s in ("projector", "llm.0", "llm.2", "llm.3")
            for k in ("global", "local")
        ]
    )
    f2 = plot_fig2(
        summary, cells, ["a"], "sgd", "acc_mean", tmp_path / "f2.png", tmp_path / "f2.pdf"
    )
    plot_fig11(
        summary, cells, ["a"], "sgd", "acc_mean", {}, tmp_path / "f11.png", tmp_path / "f11.pdf"
    )
    m = plot_methods(
        summary, ["a"], ["sgd", "lda"], "acc_mean", tmp_path / "m.png", tmp_path / "m.pdf"
    )
    # the drawn values are the rows': each view's heatmap at the best LLM layer (2, acc 0.9) is
    # its cells' grid (edge columns 0.6, the rest 0.5), each method's curve its LLM accuracies
    heatmaps = [ax for ax in f2.axes if ax.images]
    assert [ax.get_title().split("\n")[0] for ax in heatmaps] == ["a, global view", "a, local view"]
    expected = np.full((GRID, GRID), 0.5)
    expected[:, [0, GRID - 1]] = 0.6
    for ax in heatmaps:
        assert "LLM layer 2" in ax.get_title()
        np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), expected)
    curves = {line.get_label(): list(line.get_ydata()) for line in m.axes[0].lines}
    sgd = next(v for k, v in curves.items() if k.startswith("SGD"))
    lda = next(v for k, v in curves.items() if k.startswith("LDA"))
    np.testing.assert_allclose(sgd, [0.3, 0.7, 0.9, 0.8])
    np.testing.assert_allclose(lda, [0.3, 0.8, 0.8, 0.7])
    for name in ("f2", "f11", "m"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000 and (
            tmp_path / f"{name}.pdf"
        ).stat().st_size > 3_000
    # Fig 2 right has a heatmap per kind of view at the best layer (thumbnail and tiles): 2 + colour bar
    with Image.open(tmp_path / "f2.png") as im:
        assert im.size[0] > im.size[1] * 2


def test_probe_images_are_disjoint_and_seeded(tmp_path):
    train, test = probe_images("generated", "generated", 3, 2, seed=5)
    assert len(train) == 3 and len(test) == 2
    assert all(not np.array_equal(np.asarray(a), np.asarray(b)) for a in train for b in test)
    again, _ = probe_images("generated", "generated", 3, 2, seed=5)
    assert np.array_equal(np.asarray(train[0]), np.asarray(again[0]))
    folder = tmp_path / "imgs"
    for cls in ("n01", "n02"):
        (folder / cls).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (8, 8)).save(folder / cls / f"{i}.JPEG")
    tr, te = probe_images(str(folder), str(folder), 6, 4, seed=0)
    assert len(set(tr) | set(te)) == 10 and not set(tr) & set(te)
    assert {p.split("/")[-2] for p in tr} == {"n01", "n02"}  # a random sample, not the first class
    assert probe_images(str(folder), str(folder), 6, 4, seed=0) == (tr, te)
    with pytest.raises(ValueError, match="probes.n_test"):
        probe_images(str(folder), str(folder), 8, 4, seed=0)
    with pytest.raises(FileNotFoundError, match="probes.train_images"):
        probe_images(str(tmp_path / "missing"), str(folder), 1, 1, seed=0)
    with pytest.raises(ValueError, match="both `generated`"):
        probe_images("generated", str(folder), 1, 1, seed=0)


def test_probe_figures_without_controls(tmp_path):
    """`controls: {random: false, shuffled: false}`: no control rows, the figures still draw."""
    from vlmloc.figures.probe_figures import _legend_handles, plot_fig2

    summary = _summary("a", [0.3, 0.7])
    summary = summary[(summary["variant"] == "true") & (summary["stage"] != "control")]
    cells = pd.concat([_cells("a", s, lambda r, c: 0.5) for s in ("projector", "llm.0", "llm.1")])
    plot_fig2(summary, cells, ["a"], "sgd", "acc_mean", tmp_path / "f2.png", tmp_path / "f2.pdf")
    assert (tmp_path / "f2.png").stat().st_size > 10_000
    assert [h.get_label() for h in _legend_handles(summary)] == [
        "probe on true positions",
        "chance (per grid)",
        "best LLM layer",
    ]
    table = best_layer_table(summary, {}, ["sgd"], "acc_mean").iloc[0]
    assert np.isnan(table["acc_random_features"]) and np.isnan(table["max_shuffled_z"])


def test_probe_settings_from_the_config_block():
    """The demo's block gives its settings; without SGD the job's params leave `epochs` and `sgd`
    out (common.smk: they would rerun a job they do not change), and the defaults stand in."""
    import yaml
    from conftest import ROOT

    from vlmloc.probes.run import ProbeSettings

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())["probes"]
    s = ProbeSettings.from_config(cfg, batch_size=16)
    assert (s.lr, s.minibatch, s.epochs, s.methods, s.batch_size) == (
        0.01,
        256,
        10,
        ("ridge", "lda", "sgd"),
        16,
    )
    lda_only = {k: v for k, v in cfg.items() if k not in ("epochs", "sgd")} | {"methods": ["lda"]}
    s = ProbeSettings.from_config(lda_only, batch_size=4)
    assert s.methods == ("lda",) and s.epochs == ProbeSettings.epochs and s.l2 == cfg["l2"]


# ---- the best layer chosen on validation images; the untrained control -------------------------


def _with_validation():
    """Test accuracy peaks at LLM layer 2 (0.9) and backbone layer 0, validation accuracy at
    LLM layer 1 (0.8) and backbone layer 1: the layer is chosen on validation, reported on test."""
    test = _summary("a", [0.3, 0.7, 0.9, 0.8], untrained=[0.35, 0.4, 0.45, 0.2])
    val = _summary(
        "a",
        [0.3, 0.8, 0.75, 0.6],
        split="validation",
        untrained=[0.3, 0.4, 0.4, 0.2],
        vision=(0.5, 0.7),
    )
    return pd.concat([test, val], ignore_index=True)


def test_best_layer_is_chosen_on_the_validation_images():
    summary = _with_validation()
    assert best_llm_layers(summary, "sgd", "acc_mean").to_dict() == {"a": 1}
    assert best_layers(summary, "sgd", "acc_mean", "vision").to_dict() == {"a": 1}
    t = best_layer_table(summary, {}, ["sgd"], "acc_mean").iloc[0]
    assert t["best_layer_chosen_on"] == "validation" and t["best_llm_layer"] == 1
    assert (
        t["acc_best_llm"] == 0.7 and t["acc_best_llm_validation"] == 0.8
    )  # test accuracy there, validation beside
    assert t["best_llm_layer_on_test"] == 2  # what choosing on the test images would have given
    assert t["best_vision_layer"] == 1 and t["acc_best_vision"] == 0.6
    # the per-layer curves and the figures read the test rows only
    c = layer_curves(summary, "sgd", "acc_mean")
    assert list(c.loc[c["stage"] == "llm", "acc"]) == [0.3, 0.7, 0.9, 0.8]
    # rows without validation (validation_fraction 0, or an older run): chosen on the test images
    only_test = summary[summary["split"] == "test"]
    assert best_layer_table(only_test, {}, ["sgd"], "acc_mean").iloc[0][
        ["best_layer_chosen_on", "best_llm_layer"]
    ].tolist() == ["test", 2]


def test_best_layer_table_has_the_untrained_model_at_the_same_sites():
    summary = _with_validation()
    t = best_layer_table(summary, {}, ["sgd"], "acc_mean").iloc[0]
    assert t["untrained_method"] == "sgd"
    # test accuracy of the re-initialised model at the layer chosen for the trained one (llm.1), P, vision.1
    assert (
        t["acc_untrained_best_llm"],
        t["acc_untrained_projector"],
        t["acc_untrained_best_vision"],
    ) == (0.4, 0.3, 0.4)
    # the control ran with LDA only (the demo): SGD's row takes LDA's untrained numbers and says so
    lda_only = pd.concat(
        [
            summary[summary["variant"] != "untrained"],
            summary[summary["variant"] == "untrained"].assign(method="lda"),
        ]
    )
    t = best_layer_table(lda_only, {}, ["sgd"], "acc_mean").iloc[0]
    assert t["untrained_method"] == "lda" and t["acc_untrained_best_llm"] == 0.4
    none = best_layer_table(
        summary[summary["variant"] != "untrained"], {}, ["sgd"], "acc_mean"
    ).iloc[0]
    assert np.isnan(none["acc_untrained_best_llm"]) and none["untrained_method"] == ""


def test_fig2_draws_the_table_numbers(tmp_path):
    """Fig 2's lines hold the per-layer table's test accuracies: the trained probe per stage, the
    untrained control dashed (the best-layer table's column at the chosen layer), the circle at
    the layer chosen on validation."""
    from vlmloc.figures.probe_figures import UNTRAINED_LABEL, plot_fig2

    summary = _with_validation()
    cells = pd.concat([_cells("a", "llm.1", lambda r, c: 0.5)])
    fig = plot_fig2(
        summary, cells, ["a"], "sgd", "acc_mean", tmp_path / "f2.png", tmp_path / "f2.pdf"
    )
    ax = fig.axes[0]
    lines = {ln.get_gid(): ln for ln in ax.get_lines() if ln.get_gid()}
    table = summary[(summary["split"] == "test") & (summary["variant"] == "untrained")].set_index(
        "site"
    )["acc_mean"]
    for stage, sites in (
        ("vision", ["vision.0", "vision.1"]),
        ("llm", [f"llm.{i}" for i in range(4)]),
    ):
        line = lines[f"untrained:a:{stage}"]
        assert list(line.get_ydata()) == list(table[sites]) and line.get_linestyle() == "--"
    assert list(lines["untrained:a:projector"].get_ydata()) == [0.3]
    best = best_layer_table(summary, {}, ["sgd"], "acc_mean").iloc[0]
    assert (
        lines["untrained:a:llm"].get_ydata()[best["best_llm_layer"]]
        == best["acc_untrained_best_llm"]
    )
    trained = [ln for ln in ax.get_lines() if ln.get_label() == "a"][0]  # the LLM stage's line
    assert list(trained.get_ydata()) == [0.3, 0.7, 0.9, 0.8]
    (circle,) = ax.collections
    assert (
        circle.get_offsets()[0][1] == 0.7
    )  # the chosen layer 1 (validation), at its test accuracy
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert UNTRAINED_LABEL in labels


def test_fig11_draws_the_untrained_line_from_the_cells(tmp_path):
    from vlmloc.figures.probe_figures import plot_fig11

    summary = _with_validation()
    sites = ["projector", "llm.0", "llm.2", "llm.3"]
    trained = {s: 0.5 + 0.1 * k for k, s in enumerate(sites)}
    untrained = {s: 0.2 + 0.05 * k for k, s in enumerate(sites)}
    cells = pd.concat(
        [_cells("a", s, lambda r, c, v=trained[s]: v - 0.1 * (r == 0)) for s in sites]
        + [
            _cells("a", s, lambda r, c, v=untrained[s]: v + 0.1 * (c == 0), variant="untrained")
            for s in sites
        ]
        + [
            _cells("a", "llm.1", lambda r, c: 0.5),
            _cells("a", "llm.1", lambda r, c: 0.3, variant="untrained"),
        ]
    )
    fig = plot_fig11(
        summary,
        cells,
        ["a"],
        "sgd",
        "acc_mean",
        {"a": [0, 2, 3]},
        tmp_path / "f.png",
        tmp_path / "f.pdf",
    )
    lines = {ln.get_gid(): ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid()}
    # the mean over the grid's positions: one row of 4 is 0.1 lower (trained), one column 0.1 higher (untrained)
    assert np.allclose(
        lines["trained:a:global"].get_ydata(), [trained[s] - 0.1 / GRID for s in sites]
    )
    assert np.allclose(
        lines["untrained:a:global"].get_ydata(), [untrained[s] + 0.1 / GRID for s in sites]
    )
    assert lines["untrained:a:global"].get_linestyle() == "--"
