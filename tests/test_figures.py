"""The figures draw the tables' numbers: line y-data, heatmap arrays, bar heights and error bars
read back from the returned figures (not only "a PNG was written")."""

import numpy as np
import pandas as pd
import pytest

from vlmloc.figures.container_figures import plot_fig1, plot_fig10
from vlmloc.figures.token_ablation_figures import plot_token_ablation
from vlmloc.tables.containers import CELL_COLUMNS
from vlmloc.tables.token_ablation import TABLE1_COLUMNS
from vlmloc.tables.views import FIG10_COLUMNS


def _artists(fig, gid):
    return [
        a
        for ax in fig.axes
        for a in (*ax.lines, *ax.images, *ax.patches, *ax.collections)
        if a.get_gid() == gid
    ]


def _artist(fig, gid):
    found = _artists(fig, gid)
    assert len(found) == 1, (gid, len(found))
    return found[0]


def test_token_ablation_lines_are_the_tables_accuracies(tmp_path):
    rng = np.random.default_rng(0)
    rows = [
        {"model": m, "strategy": "baseline", "param": np.nan, "token_pct": 0.0} for m in ("a", "b")
    ]
    for m in ("a", "b"):
        rows += [
            {"model": m, "strategy": "object", "param": p, "token_pct": 5.0 + 4 * i}
            for i, p in enumerate((-1, 0, 1))
        ]
        rows += [
            {"model": m, "strategy": "random", "param": k, "token_pct": float(k)} for k in (4, 16)
        ]
    table = pd.DataFrame(rows).reindex(columns=TABLE1_COLUMNS)
    for short in ("loc", "cls"):
        table[short] = rng.uniform(10, 90, len(table))
        table[f"{short}_lo"], table[f"{short}_hi"] = table[short] - 5, table[short] + 5
        table[f"{short}_std"] = 2.0
    fig = plot_token_ablation(table, str(tmp_path / "f.png"), str(tmp_path / "f.pdf"))
    for m in ("a", "b"):
        for short in ("loc", "cls"):
            for strategy in ("object", "random"):
                t = table[(table["model"] == m) & (table["strategy"] == strategy)].sort_values(
                    "token_pct"
                )
                line = _artist(fig, f"{m}:{short}:{strategy}")
                np.testing.assert_allclose(np.asarray(line.get_xdata(), float), t["token_pct"])
                np.testing.assert_allclose(np.asarray(line.get_ydata(), float), t[short])
    assert (tmp_path / "f.png").stat().st_size > 0 and (tmp_path / "f.pdf").stat().st_size > 0


def test_fig1_heatmap_is_the_cells_table(tmp_path):
    rows = []
    for model in ("a", "b"):
        for p in (0, 1, 2):
            for s in (0, 1, 2):
                mean = 10 * p + s + (50 if model == "b" else 0)
                rows.append(
                    {
                        "model": model,
                        "padding": p,
                        "scale": s,
                        "mean": mean,
                        "lo": mean - 1,
                        "hi": mean + 1,
                        "std": 0.5,
                        "n_seeds": 2,
                        "n": 30,
                        "area_ratio": 1.1,
                        "ideal_area_ratio": 2.0,
                    }
                )
    cells = pd.DataFrame(rows).reindex(columns=["model", *CELL_COLUMNS])
    fig = plot_fig1(cells, "loc_score", str(tmp_path / "f.png"), str(tmp_path / "f.pdf"))
    for model in ("a", "b"):
        want = (
            cells[cells["model"] == model]
            .pivot(index="padding", columns="scale", values="mean")
            .to_numpy()
        )
        np.testing.assert_allclose(np.asarray(_artist(fig, f"cells:{model}").get_array()), want)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "21.0\n[20, 22]" in texts  # p = 2, s = 1: the mean and its interval


def test_fig10_bars_and_error_bars_are_the_drops(tmp_path):
    rows = []
    for view_i, view in enumerate(("global", "local", "both")):
        for bucket_i, bucket in enumerate(("small", "medium", "large")):
            drop = -10.0 * (view_i + 1) - bucket_i
            rows.append(
                {
                    "model": "m",
                    "task": "localization",
                    "view": view,
                    "padding": 0,
                    "size_bucket": bucket,
                    "n": 10,
                    "baseline": 50.0,
                    "score": 50 + drop,
                    "drop": drop,
                    "drop_lo": drop - 3,
                    "drop_hi": drop + 2,
                    "paper_drop": np.nan,
                }
            )
    drops = pd.DataFrame(rows).reindex(columns=FIG10_COLUMNS)
    fig = plot_fig10(drops, str(tmp_path / "f.png"), str(tmp_path / "f.pdf"))
    for view in ("global", "local", "both"):
        want = (
            drops[drops["view"] == view].set_index("size_bucket").loc[["small", "medium", "large"]]
        )
        bars = sorted(_artists(fig, f"drops:m:localization:{view}"), key=lambda b: b.get_x())
        np.testing.assert_allclose([b.get_height() for b in bars], want["drop"])
        segments = _artist(
            fig, f"errors:m:localization:{view}"
        ).get_segments()  # a vertical (lo, hi) per bar
        np.testing.assert_allclose([seg[:, 1].min() for seg in segments], want["drop_lo"])
        np.testing.assert_allclose([seg[:, 1].max() for seg in segments], want["drop_hi"])


@pytest.mark.parametrize("plot", [plot_fig1, plot_fig10])
def test_an_empty_table_still_writes_a_figure(tmp_path, plot):
    empty = pd.DataFrame(columns=["model"])
    args = (empty, "loc_score") if plot is plot_fig1 else (empty,)
    fig = plot(*args, str(tmp_path / "f.png"), str(tmp_path / "f.pdf"))
    assert fig is not None and (tmp_path / "f.png").exists()
