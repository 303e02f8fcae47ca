"""Tables of the positional probes (paper sec. 3.2, Fig. 2, app. Fig. 11) from the probe job's
rows (``summary``, ``cells``, ``timing`` of ``fit_and_score``, one set per model). pandas only:
the table and figure jobs never import torch.

"Position accuracy" (config ``probes.accuracy``): ``acc_mean`` = the mean of the row and the
column probe's accuracy (the default: the paper predicts "each spatial axis independently" and
plots an "average position accuracy"), or ``acc_both`` = both axes right (the "probability of
correctly predicting the position" of app. Fig. 11's caption).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..paper import PROBE_BEST_LAYER, PROBE_SETUP

ACCURACIES = ("acc_mean", "acc_both")
STAGE_ORDER = {"vision": 0, "projector": 1, "llm": 2, "control": 3}
TRUE, SHUFFLED = "true", "shuffled"


def paper_scale_forwards(n_train: int = PROBE_SETUP["n_train"], n_test: int = PROBE_SETUP["n_test"],
                         epochs: int = PROBE_SETUP["epochs"]) -> dict[str, int]:  # fmt: skip
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
    out["acc"] = (out["acc_row"] + out["acc_col"]) / 2 if accuracy == "acc_mean" else out["acc_both"]
    if "chance_row" in out:
        cr, cc = out["chance_row"], out["chance_col"]
        out["chance"] = (cr + cc) / 2 if accuracy == "acc_mean" else cr * cc
    return out


def layer_curves(summary: pd.DataFrame, method: str, accuracy: str) -> pd.DataFrame:
    """Per model and site (control excluded), in processing order: ``acc`` of the probe on the true
    positions, ``acc_shuffled`` of the shuffled-position control (NaN without it), ``chance``."""
    s = with_accuracy(summary[summary["method"] == method], accuracy)
    true = s[(s["variant"] == TRUE) & (s["stage"] != "control")]
    shuffled = s[s["variant"] == SHUFFLED].set_index(["model", "site"])["acc"].rename("acc_shuffled")
    out = true.join(shuffled, on=["model", "site"])
    # a probe trained on shuffled positions predicts a (random) function of the position: its
    # accuracy varies over the grid's positions, not its tokens
    out["chance_sd"] = np.sqrt(out["chance"] * (1 - out["chance"]) / (out["grid_rows"] * out["grid_cols"]))
    out = out.assign(_o=out["stage"].map(STAGE_ORDER)).sort_values(["model", "_o", "layer"]).drop(columns="_o")
    return out[["model", "method", "site", "stage", "layer", "acc", "acc_shuffled", "chance", "chance_sd",
                "n_tokens", "grid_rows", "grid_cols"]].reset_index(drop=True)  # fmt: skip


def random_control_accuracy(summary: pd.DataFrame, method: str, accuracy: str) -> pd.Series:
    """Per model: the accuracy of the probe on random features (NaN without that control)."""
    s = with_accuracy(summary[(summary["method"] == method) & (summary["variant"] == TRUE)], accuracy)
    return s[s["stage"] == "control"].set_index("model")["acc"]


def best_llm_layers(summary: pd.DataFrame, method: str, accuracy: str) -> pd.Series:
    """Per model: the LLM layer where the probe's accuracy peaks (the lowest layer on a tie)."""
    c = layer_curves(summary, method, accuracy)
    llm = c[c["stage"] == "llm"]
    return llm.loc[llm.groupby("model")["acc"].idxmax()].set_index("model")["layer"].astype(int)


def best_layer_table(summary: pd.DataFrame, paper_names: dict[str, str], methods: list[str],
                     accuracy: str) -> pd.DataFrame:  # fmt: skip
    """Per model and method: the best LLM layer and its accuracy, the projector's, the backbone's
    best, both controls, chance (``max_shuffled_z``: the shuffled-position probe's largest excess
    over chance in SDs of a random map of the grid's positions to classes); and the paper's best layer from its text and from its appendix
    (they disagree for the LLaVA models: 12 / 13 in sec. 3.2, 13 / 12 in Fig. 11's caption)."""
    rows = []
    for method in methods:
        c = layer_curves(summary, method, accuracy)
        rnd = random_control_accuracy(summary, method, accuracy)
        for model, m in c.groupby("model", sort=False):
            llm, vision, proj = (m[m["stage"] == st] for st in ("llm", "vision", "projector"))
            best = llm.loc[llm["acc"].idxmax()]
            vbest = vision.loc[vision["acc"].idxmax()] if len(vision) else None
            paper = PROBE_BEST_LAYER.get(paper_names.get(model, ""), {})
            rows.append({"model": model, "method": method, "accuracy": accuracy,
                         "best_llm_layer": int(best["layer"]), "n_llm_layers": len(llm), "acc_best_llm": best["acc"],
                         "acc_llm_first": llm["acc"].iloc[0], "acc_llm_last": llm["acc"].iloc[-1],
                         "acc_projector": proj["acc"].iloc[0] if len(proj) else np.nan,
                         "best_vision_layer": int(vbest["layer"]) if vbest is not None else -1,
                         "acc_best_vision": vbest["acc"] if vbest is not None else np.nan,
                         "acc_vision_last": vision["acc"].iloc[-1] if len(vision) else np.nan,
                         "chance_llm": best["chance"], "acc_random_features": rnd.get(model, np.nan),
                         "max_acc_shuffled": m["acc_shuffled"].max(),
                         "max_shuffled_over_chance": (m["acc_shuffled"] - m["chance"]).max(),
                         "max_shuffled_z": ((m["acc_shuffled"] - m["chance"]) / m["chance_sd"]).max(),
                         "paper_best_layer_text": paper.get("text", np.nan),
                         "paper_best_layer_appendix": paper.get("appendix", np.nan)})  # fmt: skip
    return pd.DataFrame(rows)


def cell_grid(cells: pd.DataFrame, model: str, method: str, site: str, kind: str, accuracy: str) -> np.ndarray:
    """Per-position accuracy on the grid (rows x cols, NaN where no token was scored) of the
    probe on the true positions, at one site and kind of view (global / local)."""
    c = with_accuracy(cells, accuracy)
    c = c[(c["model"] == model) & (c["method"] == method) & (c["site"] == site) & (c["kind"] == kind)
          & (c["variant"] == TRUE)]  # fmt: skip
    if c.empty:
        raise ValueError(f"no cells for {model} {method} {site} {kind}")
    grid = np.full((int(c["row"].max()) + 1, int(c["col"].max()) + 1), np.nan)
    grid[c["row"].to_numpy(), c["col"].to_numpy()] = c["acc"].to_numpy()
    return grid


def _pooled(c: pd.DataFrame) -> tuple[float, int]:
    n = int(c["n"].sum())
    return (float((c["acc"] * c["n"]).sum() / n) if n else np.nan), n


def line_breaks(cells: pd.DataFrame, sites_per_model: dict[str, list[str]], method: str, accuracy: str) -> pd.DataFrame:
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
                parts = {"first_col": k["col"] == 0, "last_col": k["col"] == last_col,
                         "edge_cols": edge_col & ~edge_row, "edge_rows": edge_row & ~edge_col,
                         "corners": edge_col & edge_row, "interior": ~edge_col & ~edge_row}  # fmt: skip
                acc = {name: _pooled(k[mask]) for name, mask in parts.items()}
                row = {"model": model, "method": method, "accuracy": accuracy, "site": site, "kind": kind,
                       "grid": f"{last_row + 1}x{last_col + 1}"}  # fmt: skip
                row |= {f"acc_{name}": a for name, (a, _) in acc.items()}
                row |= {f"n_{name}": n for name, (_, n) in acc.items() if name in ("edge_cols", "edge_rows", "interior")}
                row["diff_cols_vs_rows"] = acc["edge_cols"][0] - acc["edge_rows"][0]
                edges = _pooled(k[(edge_col | edge_row) & ~(edge_col & edge_row)])[0]
                row["diff_edges_vs_interior"] = edges - acc["interior"][0]
                rows.append(row)
    return pd.DataFrame(rows)


def layers_by_kind(cells: pd.DataFrame, summary: pd.DataFrame, accuracy: str) -> pd.DataFrame:
    """Per model, method, site, variant and kind of view (global / local), the accuracies pooled
    over the cells: the per-kind numbers behind InternVL's per-layer accuracy, which pools the
    thumbnail's and the tiles' tokens (weighted by count: the tiles dominate)."""
    c = cells.assign(ok_row=cells["acc_row"] * cells["n"], ok_col=cells["acc_col"] * cells["n"],
                     ok_both=cells["acc_both"] * cells["n"])  # fmt: skip
    keys = ["model", "method", "site", "stage", "layer", "variant", "kind"]
    g = c.groupby(keys, sort=False)[["n", "ok_row", "ok_col", "ok_both"]].sum().reset_index()
    out = g[keys].assign(n_tokens=g["n"], acc_row=g["ok_row"] / g["n"], acc_col=g["ok_col"] / g["n"],
                         acc_both=g["ok_both"] / g["n"])  # fmt: skip
    out["acc_mean"] = (out["acc_row"] + out["acc_col"]) / 2
    grid = ["grid_rows", "grid_cols", "chance_row", "chance_col"]  # the same grid for both kinds
    out = out.merge(summary.drop_duplicates(["model", "method", "site"])[["model", "method", "site", *grid]],
                    on=["model", "method", "site"], how="left")  # fmt: skip
    return with_accuracy(out, accuracy)


def method_table(summary: pd.DataFrame, timing: pd.DataFrame, accuracy: str,
                 paper_scale: dict[str, int] | None = None) -> pd.DataFrame:  # fmt: skip
    """Per model and method: accuracy (mean over the sites, projector, best LLM layer), its mean
    absolute difference to SGD's per site (the paper's method), the demo's forward passes and
    seconds, and the forward passes the method needs at the paper's scale."""
    paper_scale = paper_scale or paper_scale_forwards()
    rows = []
    for (model, method), t in timing.groupby(["model", "method"], sort=False):
        c = layer_curves(summary[summary["model"] == model], method, accuracy)
        llm = c[c["stage"] == "llm"]
        vs_sgd = np.nan
        if method != "sgd" and (summary["method"] == "sgd").any():
            ref = layer_curves(summary[summary["model"] == model], "sgd", accuracy).set_index("site")["acc"]
            vs_sgd = float((c.set_index("site")["acc"] - ref).abs().mean())
        r = t.iloc[0]
        rows.append({"model": model, "method": method, "accuracy": accuracy, "acc_mean_over_sites": c["acc"].mean(),
                     "acc_projector": c.loc[c["stage"] == "projector", "acc"].mean(),
                     "best_llm_layer": int(llm.loc[llm["acc"].idxmax(), "layer"]), "acc_best_llm": llm["acc"].max(),
                     "mean_abs_diff_vs_sgd": vs_sgd, "train_passes": int(r["train_passes"]),
                     "train_forwards": int(r["train_forwards"]), "test_forwards": int(r["test_forwards"]),
                     "forward_s": r["forward_s"], "probe_s": r["probe_s"], "train_s": r["train_s"],
                     "paper_scale_forwards": paper_scale[method]})  # fmt: skip
    return pd.DataFrame(rows)


def fig11_sites(summary: pd.DataFrame, model: str, method: str, accuracy: str, layers: list[int] | None = None) -> list[str]:
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
