"""Tables of the positional probes (paper sec. 3.2, Fig. 2, app. Fig. 11) from the probe job's
rows (``summary``, ``cells``, ``timing`` of ``fit_and_score``, one set per model). pandas only:
the table and figure jobs never import torch.

"Position accuracy" (config ``probes.accuracy``): ``acc_mean`` = the mean of the row and the
column probe's accuracy (the default: the paper predicts "each spatial axis independently" and
plots an "average position accuracy"), or ``acc_both`` = both axes right (the "probability of
correctly predicting the position" of app. Fig. 11's caption).

Rows carry ``split``: "test" (the reported accuracies) or "validation" (train images held out
from the probes' training: the best layer is chosen on them, ``best_llm_layers``); rows without
the column (older runs) are all test rows. ``variant`` "untrained": the probes of the same
architecture with re-initialised weights (the control that can fail: what it decodes is
architecture, not learning).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..paper import PROBE_BEST_LAYER, PROBE_SETUP

ACCURACIES = ("acc_mean", "acc_both")
STAGE_ORDER = {"vision": 0, "projector": 1, "llm": 2, "control": 3}
TRUE, SHUFFLED, UNTRAINED = "true", "shuffled", "untrained"
TEST, VALIDATION = "test", "validation"


def on_split(rows: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of one split (rows without a ``split`` column are test rows)."""
    if "split" not in rows:
        return rows if split == TEST else rows.iloc[:0]
    return rows[rows["split"] == split]


def paper_scale_forwards(
    n_train: int = PROBE_SETUP["n_train"],
    n_test: int = PROBE_SETUP["n_test"],
    epochs: int = PROBE_SETUP["epochs"],
) -> dict[str, int]:
    """Forward passes each method needs (one per image per pass; every site in the same pass)."""
    return {"ridge": n_train + n_test, "lda": n_train + n_test, "sgd": epochs * n_train + n_test}


def _check_accuracy(accuracy: str) -> None:
    if accuracy not in ACCURACIES:
        raise ValueError(f"probes.accuracy must be one of {ACCURACIES}, got {accuracy!r}")


def with_accuracy(rows: pd.DataFrame, accuracy: str) -> pd.DataFrame:
    """``rows`` with ``acc`` = the chosen position accuracy (cells have no ``acc_mean`` column:
    it is the mean of their row and column accuracy) and, on summary rows, its ``chance``."""
    _check_accuracy(accuracy)
    out = rows.copy()
    out["acc"] = (
        (out["acc_row"] + out["acc_col"]) / 2 if accuracy == "acc_mean" else out["acc_both"]
    )
    if f"{accuracy}_lo" in out:  # summary rows: the interval over images
        out["acc_lo"], out["acc_hi"] = out[f"{accuracy}_lo"], out[f"{accuracy}_hi"]
    if "chance_row" in out:
        cr, cc = out["chance_row"], out["chance_col"]
        out["chance"] = (cr + cc) / 2 if accuracy == "acc_mean" else cr * cc
    return out


def untrained_method(summary: pd.DataFrame, method: str) -> str | None:
    """The method whose untrained-control rows stand beside ``method``'s: its own, else LDA's
    (``probes.controls.untrained_methods`` may run the control with the closed form only, as the
    demo does), else None (no untrained control)."""
    have = set(summary.loc[summary["variant"] == UNTRAINED, "method"])
    return method if method in have else "lda" if "lda" in have else min(have) if have else None


def layer_curves(
    summary: pd.DataFrame, method: str, accuracy: str, split: str = TEST
) -> pd.DataFrame:
    """Per model and site (control excluded), in processing order, on one split: ``acc`` of the
    probe on the true positions and its interval over images (``acc_lo``, ``acc_hi``), ``acc_shuffled`` of the shuffled-position control and
    ``acc_untrained`` of the probe of ``untrained_method`` on the re-initialised model (NaN
    without them), ``chance``."""
    rows = on_split(summary, split)
    s = with_accuracy(rows[rows["method"] == method], accuracy)
    out = s[(s["variant"] == TRUE) & (s["stage"] != "control")]
    shuffled = (
        s[s["variant"] == SHUFFLED].set_index(["model", "site"])["acc"].rename("acc_shuffled")
    )
    um = untrained_method(summary, method)
    u = with_accuracy(rows[(rows["method"] == um) & (rows["variant"] == UNTRAINED)], accuracy)
    out = out.join(shuffled, on=["model", "site"]).join(
        u.set_index(["model", "site"])["acc"].rename("acc_untrained"), on=["model", "site"]
    )
    out["untrained_method"] = um
    # a probe trained on shuffled positions predicts a (random) function of the position: its
    # accuracy varies over the grid's positions, not its tokens
    out["chance_sd"] = np.sqrt(
        out["chance"] * (1 - out["chance"]) / (out["grid_rows"] * out["grid_cols"])
    )
    out = (
        out.assign(_o=out["stage"].map(STAGE_ORDER))
        .sort_values(["model", "_o", "layer"])
        .drop(columns="_o")
    )
    out = out.reindex(columns=[*out.columns, *[c for c in ("acc_lo", "acc_hi") if c not in out]])
    return out[
        [
            "model",
            "method",
            "site",
            "stage",
            "layer",
            "acc",
            "acc_lo",
            "acc_hi",
            "acc_shuffled",
            "acc_untrained",
            "untrained_method",
            "chance",
            "chance_sd",
            "n_tokens",
            "grid_rows",
            "grid_cols",
        ]
    ].reset_index(drop=True)


def random_control_accuracy(summary: pd.DataFrame, method: str, accuracy: str) -> pd.Series:
    """Per model: the accuracy of the probe on random features (NaN without that control)."""
    s = with_accuracy(
        on_split(summary[(summary["method"] == method) & (summary["variant"] == TRUE)], TEST),
        accuracy,
    )
    return s[s["stage"] == "control"].set_index("model")["acc"]


def selection_split(summary: pd.DataFrame, model: str) -> str:
    """Where a model's best layers are chosen: the validation images when it has their rows
    (``probes.validation_fraction`` > 0), else (an older run, or no validation images) the test
    images, which then also report the accuracy there (optimistic)."""
    return VALIDATION if len(on_split(summary[summary["model"] == model], VALIDATION)) else TEST


def _argmax_layer(curves: pd.DataFrame, stage: str) -> int | None:
    """The layer of ``stage`` where ``acc`` peaks (the lowest on a tie), None without that stage."""
    c = curves[curves["stage"] == stage]
    return int(c.loc[c["acc"].idxmax(), "layer"]) if len(c) else None


def best_layers(summary: pd.DataFrame, method: str, accuracy: str, stage: str = "llm") -> pd.Series:
    """Per model: the layer of ``stage`` where the probe's accuracy on the VALIDATION images
    peaks (the lowest layer on a tie; the test images where there are no validation rows)."""
    out = {}
    for model in summary["model"].unique():
        s = summary[summary["model"] == model]
        layer = _argmax_layer(
            layer_curves(s, method, accuracy, selection_split(summary, model)), stage
        )
        if layer is not None:
            out[model] = layer
    return pd.Series(out, name="layer", dtype=int).rename_axis("model")


def best_llm_layers(summary: pd.DataFrame, method: str, accuracy: str) -> pd.Series:
    """Per model: the LLM layer chosen on the validation images (``best_layers``)."""
    return best_layers(summary, method, accuracy, "llm")


def best_layer_table(
    summary: pd.DataFrame, paper_names: dict[str, str], methods: list[str], accuracy: str
) -> pd.DataFrame:
    """Per model and method: the best LLM layer, chosen on the validation images
    (``best_layer_chosen_on``), its TEST accuracy (``acc_best_llm``) and its validation accuracy
    beside it, the layer the test images alone would have picked, the projector's accuracy, the
    backbone's best layer (also chosen on validation); the untrained (re-initialised) model's
    test accuracy at the same sites (``acc_untrained_*``, of ``untrained_method``: the same
    method, or LDA where the control ran with LDA only); the two controls that stay at chance
    for any model, chance (``max_shuffled_z``: the shuffled-position probe's largest excess over
    chance in SDs of a random map of the grid's positions to classes); and the paper's best
    layer from its text and from its appendix (they disagree for the LLaVA models: 12 / 13 in
    sec. 3.2, 13 / 12 in Fig. 11's caption)."""
    rows = []
    for method in methods:
        c = layer_curves(summary, method, accuracy)
        rnd = random_control_accuracy(summary, method, accuracy)
        for model, m in c.groupby("model", sort=False):
            chosen_on = selection_split(summary, model)
            sel = layer_curves(summary[summary["model"] == model], method, accuracy, chosen_on)
            val = layer_curves(
                summary[summary["model"] == model], method, accuracy, VALIDATION
            ).set_index("site")["acc"]
            llm, vision, proj = (m[m["stage"] == st] for st in ("llm", "vision", "projector"))
            at = m.set_index("site")
            best, vbest = _argmax_layer(sel, "llm"), _argmax_layer(sel, "vision")
            b, vb = f"llm.{best}", f"vision.{vbest}"
            paper = PROBE_BEST_LAYER.get(paper_names.get(model, ""), {})
            rows.append(
                {
                    "model": model,
                    "method": method,
                    "accuracy": accuracy,
                    "best_layer_chosen_on": chosen_on,
                    "best_llm_layer": best,
                    "n_llm_layers": len(llm),
                    "acc_best_llm": at.loc[b, "acc"],
                    "acc_best_llm_validation": val.get(b, np.nan),
                    "best_llm_layer_on_test": _argmax_layer(m, "llm"),
                    "untrained_method": untrained_method(summary, method) or "",
                    "acc_untrained_best_llm": at.loc[b, "acc_untrained"],
                    "acc_llm_first": llm["acc"].iloc[0],
                    "acc_llm_last": llm["acc"].iloc[-1],
                    "acc_projector": proj["acc"].iloc[0] if len(proj) else np.nan,
                    "acc_untrained_projector": proj["acc_untrained"].iloc[0]
                    if len(proj)
                    else np.nan,
                    "best_vision_layer": vbest if vbest is not None else -1,
                    "acc_best_vision": at.loc[vb, "acc"] if vbest is not None else np.nan,
                    "acc_untrained_best_vision": at.loc[vb, "acc_untrained"]
                    if vbest is not None
                    else np.nan,
                    "acc_vision_last": vision["acc"].iloc[-1] if len(vision) else np.nan,
                    "chance_llm": at.loc[b, "chance"],
                    "acc_random_features": rnd.get(model, np.nan),
                    "max_acc_shuffled": m["acc_shuffled"].max(),
                    "max_shuffled_over_chance": (m["acc_shuffled"] - m["chance"]).max(),
                    "max_shuffled_z": ((m["acc_shuffled"] - m["chance"]) / m["chance_sd"]).max(),
                    "paper_best_layer_text": paper.get("text", np.nan),
                    "paper_best_layer_appendix": paper.get("appendix", np.nan),
                }
            )
    return pd.DataFrame(rows)


def cell_grid(
    cells: pd.DataFrame,
    model: str,
    method: str,
    site: str,
    kind: str,
    accuracy: str,
    variant: str = TRUE,
) -> np.ndarray:
    """Per-position accuracy on the grid (rows x cols, NaN where no token was scored) of the
    probe on the true positions (of the trained model, or ``variant`` "untrained"), at one site
    and kind of view (global / local), on the test images."""
    c = with_accuracy(cells, accuracy)
    c = c[
        (c["model"] == model)
        & (c["method"] == method)
        & (c["site"] == site)
        & (c["kind"] == kind)
        & (c["variant"] == variant)
    ]
    if c.empty:
        raise ValueError(f"no cells for {model} {method} {site} {kind} {variant}")
    grid = np.full((int(c["row"].max()) + 1, int(c["col"].max()) + 1), np.nan)
    grid[c["row"].to_numpy(), c["col"].to_numpy()] = c["acc"].to_numpy()
    return grid


def _pooled(c: pd.DataFrame) -> tuple[float, int]:
    n = int(c["n"].sum())
    return (float((c["acc"] * c["n"]).sum() / n) if n else np.nan), n


def line_breaks(
    cells: pd.DataFrame, sites_per_model: dict[str, list[str]], method: str, accuracy: str
) -> pd.DataFrame:
    """The "line-break" analysis (paper Fig. 2 right): per model, site and kind of view, the
    accuracy of the tokens in the first and last column (where the row-major token sequence
    breaks into the next row), in the first and last row (edges too, but no line break), at the
    four corners and in the interior, pooled over tokens (edges without their corners).

    Any classifier of an ordered axis decodes its end classes better (an end has one neighbour to
    be confused with), so edge columns beating the interior says little. ``diff_cols_vs_rows`` =
    edge columns minus edge rows: above 0 is the line-break effect beyond an edge effect;
    ``diff_edges_vs_interior`` is the edge effect itself."""
    c = with_accuracy(cells[(cells["method"] == method) & (cells["variant"] == TRUE)], accuracy)
    rows = []
    for model, wanted in sites_per_model.items():
        for site in wanted:
            for kind, k in c[(c["model"] == model) & (c["site"] == site)].groupby("kind"):
                last_row, last_col = k["row"].max(), k["col"].max()
                edge_col, edge_row = k["col"].isin([0, last_col]), k["row"].isin([0, last_row])
                parts = {
                    "first_col": k["col"] == 0,
                    "last_col": k["col"] == last_col,
                    "edge_cols": edge_col & ~edge_row,
                    "edge_rows": edge_row & ~edge_col,
                    "corners": edge_col & edge_row,
                    "interior": ~edge_col & ~edge_row,
                }
                acc = {name: _pooled(k[mask]) for name, mask in parts.items()}
                row = {
                    "model": model,
                    "method": method,
                    "accuracy": accuracy,
                    "site": site,
                    "kind": kind,
                    "grid": f"{last_row + 1}x{last_col + 1}",
                }
                row |= {f"acc_{name}": a for name, (a, _) in acc.items()}
                row |= {
                    f"n_{name}": n
                    for name, (_, n) in acc.items()
                    if name in ("edge_cols", "edge_rows", "interior")
                }
                row["diff_cols_vs_rows"] = acc["edge_cols"][0] - acc["edge_rows"][0]
                edges = _pooled(k[(edge_col | edge_row) & ~(edge_col & edge_row)])[0]
                row["diff_edges_vs_interior"] = edges - acc["interior"][0]
                rows.append(row)
    return pd.DataFrame(rows)


def layers_by_kind(cells: pd.DataFrame, summary: pd.DataFrame, accuracy: str) -> pd.DataFrame:
    """Per model, method, site, variant and kind of view (global / local), the accuracies pooled
    over the cells: the per-kind numbers behind InternVL's per-layer accuracy, which pools the
    thumbnail's and the tiles' tokens (weighted by count: the tiles dominate)."""
    c = cells.assign(
        ok_row=cells["acc_row"] * cells["n"],
        ok_col=cells["acc_col"] * cells["n"],
        ok_both=cells["acc_both"] * cells["n"],
    )
    keys = ["model", "method", "site", "stage", "layer", "variant", "kind"]
    g = c.groupby(keys, sort=False)[["n", "ok_row", "ok_col", "ok_both"]].sum().reset_index()
    out = g[keys].assign(
        n_tokens=g["n"],
        acc_row=g["ok_row"] / g["n"],
        acc_col=g["ok_col"] / g["n"],
        acc_both=g["ok_both"] / g["n"],
    )
    out["acc_mean"] = (out["acc_row"] + out["acc_col"]) / 2
    grid = ["grid_rows", "grid_cols", "chance_row", "chance_col"]  # the same grid for both kinds
    out = out.merge(
        summary.drop_duplicates(["model", "method", "site"])[["model", "method", "site", *grid]],
        on=["model", "method", "site"],
        how="left",
    )
    return with_accuracy(out, accuracy)


def method_table(
    summary: pd.DataFrame,
    timing: pd.DataFrame,
    accuracy: str,
    paper_scale: dict[str, int] | None = None,
) -> pd.DataFrame:
    """Per model and method: accuracy (mean over the sites, projector, best LLM layer chosen on
    the validation images, test accuracy there), its mean
    absolute difference to SGD's per site (the paper's method), the demo's forward passes and
    seconds, and the forward passes the method needs at the paper's scale."""
    paper_scale = paper_scale or paper_scale_forwards()
    if (
        "variant" in timing
    ):  # the trained model's probes (the untrained control's cost is its own row)
        timing = timing[timing["variant"] == TRUE]
    rows = []
    for (model, method), t in timing.groupby(["model", "method"], sort=False):
        c = layer_curves(summary[summary["model"] == model], method, accuracy)
        llm = c[c["stage"] == "llm"]
        best = int(best_llm_layers(summary[summary["model"] == model], method, accuracy).iloc[0])
        vs_sgd = np.nan
        if method != "sgd" and (summary["method"] == "sgd").any():
            ref = layer_curves(summary[summary["model"] == model], "sgd", accuracy).set_index(
                "site"
            )["acc"]
            vs_sgd = float((c.set_index("site")["acc"] - ref).abs().mean())
        r = t.iloc[0]
        rows.append(
            {
                "model": model,
                "method": method,
                "accuracy": accuracy,
                "acc_mean_over_sites": c["acc"].mean(),
                "acc_projector": c.loc[c["stage"] == "projector", "acc"].mean(),
                "best_llm_layer": best,
                "acc_best_llm": float(llm.loc[llm["layer"] == best, "acc"].iloc[0]),
                "mean_abs_diff_vs_sgd": vs_sgd,
                "train_passes": int(r["train_passes"]),
                "train_forwards": int(r["train_forwards"]),
                "test_forwards": int(r["test_forwards"]),
                "forward_s": r["forward_s"],
                "probe_s": r["probe_s"],
                "train_s": r["train_s"],
                "paper_scale_forwards": paper_scale[method],
            }
        )
    return pd.DataFrame(rows)


def fig11_sites(
    summary: pd.DataFrame, model: str, method: str, accuracy: str, layers: list[int] | None = None
) -> list[str]:
    """The sites of app. Fig. 11 for one model: the projector, then ``layers`` of the LLM, by
    default its first, middle, best and last layer."""
    c = layer_curves(summary[summary["model"] == model], method, accuracy)
    n_llm = int((c["stage"] == "llm").sum())
    if layers is None:
        best = int(best_llm_layers(summary[summary["model"] == model], method, accuracy).iloc[0])
        layers = sorted({0, n_llm // 2, best, n_llm - 1})
    bad = [x for x in layers if not 0 <= x < n_llm]
    if bad:
        raise ValueError(f"probes.fig11_layers.{model}: layers {bad} outside 0..{n_llm - 1}")
    return ["projector", *[f"llm.{x}" for x in layers]]
