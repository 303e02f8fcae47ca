"""Numbers published in the paper, shown next to ours in tables (never used to compute anything).

The only module with ``# fmt: skip``: its tables keep the paper's rows on one line each, so a
reader can hold them against the paper's tables; the formatter would spread them one value a line.
"""

from __future__ import annotations

# Sec. 2.2 / appendix 6.1 and 7.3: sample counts after the appendix 6.1 filters.
FILTERED = {
    "coco": {"annotations": 6403, "images": 3560},
    "voc": {"annotations": 1957, "images": 1585},
}
# Sec. 2.2: after the per-model hallucination filter, intersected over the three models.
PROBING = {"coco": {"annotations": 2248, "images": 1720}}
# Table 1, baseline row (probing subset): localization score and list classification, in %.
TABLE1_BASELINE = {
    "llava-1.5-7b": {"loc": 35.34, "cls": 58.10},
    "llava-1.5-13b": {"loc": 46.98, "cls": 65.30},
    "internvl-3.5-8b": {"loc": 72.64, "cls": 83.30},
}
# Appendix 6.2: false-positive rates on object-removed images across the three models.
FPR_RANGE = {"list": "0.27-0.45", "binary": "0.56-0.70"}

# The three models of the paper, in the column order of Tables 1, 4 and 5.
PAPER_MODELS = ("llava-1.5-7b", "llava-1.5-13b", "internvl-3.5-8b")
# Table 1 (sec. 3.1, probing subset): (strategy, param) -> per model {"loc": %, "cls": %}.
# strategy in baseline/object/ig/random/register; param = padding for object (-2..2, 0 = the
# object mask itself), k (% of image tokens) for ig (Integrated Gradients) and random (mean of
# 3 seeds, stds in TABLE4), None for baseline and register. The PDF-extracted markdown misplaces
# the row labels ("Random (3 seeds)" sits on IG k=48, "Register" on random k=32, the register
# row is the last one); the numbers are in the paper's row order. The arrows (change vs the
# baseline) are not stored: tests/test_paper_values.py recomputes them.
TABLE1 = {
    "llava-1.5-7b": {
        ("baseline", None): {"loc": 35.34, "cls": 58.10},
        ("object", -2): {"loc": 34.71, "cls": 57.78},
        ("object", -1): {"loc": 31.73, "cls": 55.29},
        ("object", 0): {"loc": 5.92, "cls": 19.44},
        ("object", 1): {"loc": 0.73, "cls": 11.25},
        ("object", 2): {"loc": 0.34, "cls": 10.59},
        ("ig", 1): {"loc": 31.54, "cls": 52.67},
        ("ig", 4): {"loc": 22.14, "cls": 48.40},
        ("ig", 8): {"loc": 15.84, "cls": 43.95},
        ("ig", 16): {"loc": 8.75, "cls": 37.28},
        ("ig", 32): {"loc": 2.79, "cls": 29.05},
        ("ig", 48): {"loc": 0.86, "cls": 32.25},
        ("random", 1): {"loc": 35.52, "cls": 57.98},
        ("random", 4): {"loc": 35.57, "cls": 57.35},
        ("random", 8): {"loc": 35.09, "cls": 56.58},
        ("random", 16): {"loc": 33.71, "cls": 56.39},
        ("random", 32): {"loc": 30.43, "cls": 55.40},
        ("random", 48): {"loc": 25.65, "cls": 54.80},
        ("register", None): {"loc": 35.07, "cls": 59.48},
    },
    "llava-1.5-13b": {
        ("baseline", None): {"loc": 46.98, "cls": 65.30},
        ("object", -2): {"loc": 47.09, "cls": 65.21},
        ("object", -1): {"loc": 43.74, "cls": 65.48},
        ("object", 0): {"loc": 7.37, "cls": 31.41},
        ("object", 1): {"loc": 0.59, "cls": 15.12},
        ("object", 2): {"loc": 0.28, "cls": 12.54},
        ("ig", 1): {"loc": 38.80, "cls": 60.36},
        ("ig", 4): {"loc": 23.50, "cls": 54.72},
        ("ig", 8): {"loc": 13.09, "cls": 49.24},
        ("ig", 16): {"loc": 5.66, "cls": 44.80},
        ("ig", 32): {"loc": 1.39, "cls": 35.72},
        ("ig", 48): {"loc": 0.37, "cls": 28.65},
        ("random", 1): {"loc": 46.74, "cls": 64.86},
        ("random", 4): {"loc": 45.99, "cls": 64.68},
        ("random", 8): {"loc": 45.25, "cls": 63.89},
        ("random", 16): {"loc": 43.76, "cls": 63.92},
        ("random", 32): {"loc": 39.88, "cls": 62.54},
        ("random", 48): {"loc": 34.44, "cls": 61.34},
        ("register", None): {"loc": 46.53, "cls": 64.95},
    },
    "internvl-3.5-8b": {
        ("baseline", None): {"loc": 72.64, "cls": 83.30},
        ("object", -2): {"loc": 72.73, "cls": 83.41},
        ("object", -1): {"loc": 72.35, "cls": 81.85},
        ("object", 0): {"loc": 11.27, "cls": 33.19},
        ("object", 1): {"loc": 3.77, "cls": 23.71},
        ("object", 2): {"loc": 2.02, "cls": 20.73},
        ("ig", 1): {"loc": 62.46, "cls": 81.49},
        ("ig", 4): {"loc": 43.64, "cls": 77.49},
        ("ig", 8): {"loc": 30.13, "cls": 74.69},
        ("ig", 16): {"loc": 16.21, "cls": 71.00},
        ("ig", 32): {"loc": 6.44, "cls": 64.86},
        ("ig", 48): {"loc": 3.23, "cls": 59.52},
        ("random", 1): {"loc": 72.32, "cls": 83.44},
        ("random", 4): {"loc": 72.30, "cls": 83.33},
        ("random", 8): {"loc": 71.71, "cls": 83.10},
        ("random", 16): {"loc": 70.46, "cls": 83.02},
        ("random", 32): {"loc": 66.88, "cls": 82.62},
        ("random", 48): {"loc": 59.03, "cls": 81.69},
        ("register", None): {"loc": 72.64, "cls": 83.41},
    },
}
# Table 1's token column: (strategy, param) -> per model the published share of image tokens
# removed, a float (%); for InternVL a (global, local) tuple where the paper gives one (object
# rows and register; the caption calls these "the number of removed tokens" while the column
# header says %). LLaVA 7B and 13B share the paper's single "Token (%)" column.
TABLE1_TOKENS = {
    "llava-1.5-7b": {
        ("baseline", None): 0.0,
        ("object", -2): 1.0,
        ("object", -1): 3.0,
        ("object", 0): 8.0,
        ("object", 1): 14.0,
        ("object", 2): 21.0,
        ("ig", 1): 1.0,
        ("ig", 4): 4.0,
        ("ig", 8): 8.0,
        ("ig", 16): 16.0,
        ("ig", 32): 32.0,
        ("ig", 48): 48.0,
        ("random", 1): 1.0,
        ("random", 4): 4.0,
        ("random", 8): 8.0,
        ("random", 16): 16.0,
        ("random", 32): 32.0,
        ("random", 48): 48.0,
        ("register", None): 1.0,
    },
    "llava-1.5-13b": {
        ("baseline", None): 0.0,
        ("object", -2): 1.0,
        ("object", -1): 3.0,
        ("object", 0): 8.0,
        ("object", 1): 14.0,
        ("object", 2): 21.0,
        ("ig", 1): 1.0,
        ("ig", 4): 4.0,
        ("ig", 8): 8.0,
        ("ig", 16): 16.0,
        ("ig", 32): 32.0,
        ("ig", 48): 48.0,
        ("random", 1): 1.0,
        ("random", 4): 4.0,
        ("random", 8): 8.0,
        ("random", 16): 16.0,
        ("random", 32): 32.0,
        ("random", 48): 48.0,
        ("register", None): 1.0,
    },
    "internvl-3.5-8b": {
        ("baseline", None): 0.0,
        ("object", -2): (1.0, 2.0),
        ("object", -1): (4.0, 5.0),
        ("object", 0): (13.0, 10.0),
        ("object", 1): (23.0, 14.0),
        ("object", 2): (34.0, 18.0),
        ("ig", 1): 1.0,
        ("ig", 4): 4.0,
        ("ig", 8): 8.0,
        ("ig", 16): 16.0,
        ("ig", 32): 32.0,
        ("ig", 48): 48.0,
        ("random", 1): 1.0,
        ("random", 4): 4.0,
        ("random", 8): 8.0,
        ("random", 16): 16.0,
        ("random", 32): 32.0,
        ("random", 48): 48.0,
        ("register", None): (4.0, 4.0),
    },
}
# Table 4 (appendix 7.2, random ablation, 3 seeds): k (%) -> per model
# {"loc": mean, "loc_std": std, "cls": mean, "cls_std": std}; has k = 24, which Table 1 lacks.
TABLE4 = {
    1: {
        "llava-1.5-7b": {"loc": 35.52, "loc_std": 0.21, "cls": 57.98, "cls_std": 0.18},
        "llava-1.5-13b": {"loc": 46.74, "loc_std": 0.08, "cls": 64.86, "cls_std": 0.40},
        "internvl-3.5-8b": {"loc": 72.32, "loc_std": 0.23, "cls": 83.44, "cls_std": 0.51},
    },
    4: {
        "llava-1.5-7b": {"loc": 35.57, "loc_std": 0.09, "cls": 57.35, "cls_std": 0.18},
        "llava-1.5-13b": {"loc": 45.99, "loc_std": 0.39, "cls": 64.68, "cls_std": 0.23},
        "internvl-3.5-8b": {"loc": 72.30, "loc_std": 0.39, "cls": 83.33, "cls_std": 0.09},
    },
    8: {
        "llava-1.5-7b": {"loc": 35.09, "loc_std": 0.08, "cls": 56.58, "cls_std": 0.29},
        "llava-1.5-13b": {"loc": 45.25, "loc_std": 0.08, "cls": 63.89, "cls_std": 0.14},
        "internvl-3.5-8b": {"loc": 71.71, "loc_std": 0.21, "cls": 83.10, "cls_std": 0.35},
    },
    16: {
        "llava-1.5-7b": {"loc": 33.71, "loc_std": 0.50, "cls": 56.39, "cls_std": 0.65},
        "llava-1.5-13b": {"loc": 43.76, "loc_std": 0.16, "cls": 63.92, "cls_std": 0.24},
        "internvl-3.5-8b": {"loc": 70.46, "loc_std": 0.20, "cls": 83.02, "cls_std": 0.39},
    },
    24: {
        "llava-1.5-7b": {"loc": 31.92, "loc_std": 0.23, "cls": 55.72, "cls_std": 0.52},
        "llava-1.5-13b": {"loc": 41.95, "loc_std": 0.29, "cls": 63.51, "cls_std": 0.29},
        "internvl-3.5-8b": {"loc": 68.81, "loc_std": 0.42, "cls": 82.83, "cls_std": 0.47},
    },
    32: {
        "llava-1.5-7b": {"loc": 30.43, "loc_std": 0.13, "cls": 55.40, "cls_std": 0.34},
        "llava-1.5-13b": {"loc": 39.88, "loc_std": 0.33, "cls": 62.54, "cls_std": 0.52},
        "internvl-3.5-8b": {"loc": 66.88, "loc_std": 0.47, "cls": 82.62, "cls_std": 0.56},
    },
    48: {
        "llava-1.5-7b": {"loc": 25.65, "loc_std": 0.29, "cls": 54.80, "cls_std": 0.83},
        "llava-1.5-13b": {"loc": 34.44, "loc_std": 0.16, "cls": 61.34, "cls_std": 0.66},
        "internvl-3.5-8b": {"loc": 59.03, "loc_std": 0.39, "cls": 81.69, "cls_std": 0.33},
    },
}
# Table 5 (appendix 7.3, Pascal VOC): strategy -> per model {"loc": %, "cls": %}; "ig" is the
# paper's "Gradients" row; object/ig/random remove an equal number of tokens (random: 3 seeds).
TABLE5 = {
    "baseline": {
        "llava-1.5-7b": {"loc": 52.41, "cls": 73.41},
        "llava-1.5-13b": {"loc": 63.68, "cls": 82.97},
        "internvl-3.5-8b": {"loc": 85.78, "cls": 97.06},
    },
    "object": {
        "llava-1.5-7b": {"loc": 9.52, "cls": 31.37},
        "llava-1.5-13b": {"loc": 18.63, "cls": 54.78},
        "internvl-3.5-8b": {"loc": 26.35, "cls": 52.94},
    },
    "ig": {
        "llava-1.5-7b": {"loc": 22.63, "cls": 57.23},
        "llava-1.5-13b": {"loc": 20.83, "cls": 74.39},
        "internvl-3.5-8b": {"loc": 27.00, "cls": 89.34},
    },
    "random": {
        "llava-1.5-7b": {"loc": 50.41, "cls": 72.96},
        "llava-1.5-13b": {"loc": 61.08, "cls": 84.52},
        "internvl-3.5-8b": {"loc": 83.76, "cls": 97.30},
    },
}

# Sec. 3.3.1 / appendix 9 (Fig. 3, Fig. 12): where blocking attention to the object hurts most.
KNOCKOUT_STATEMENT = {
    "llava-1.5-7b": "early-mid layers (loc. drops sharply there; later layers barely matter)",
    "llava-1.5-13b": "early-mid layers (loc. drops sharply there; later layers barely matter)",
    "internvl-3.5-8b": "mid-late layers",
}

# Table 2 (sec. 3.1.1): token shuffling, mean +- std over 3 seeds, in %. "full" permutes every
# visual token, "object" those inside the object mask; baseline = Table 1's.
TABLE2 = {
    "llava-1.5-7b": {"baseline": {"loc": 35.34, "cls": 58.10},
                     "full": {"loc": 1.90, "loc_std": 0.10, "cls": 62.42, "cls_std": 0.62},
                     "object": {"loc": 35.30, "loc_std": 0.20, "cls": 58.44, "cls_std": 0.39}},
    "llava-1.5-13b": {"baseline": {"loc": 46.98, "cls": 65.30},
                      "full": {"loc": 0.30, "loc_std": 0.00, "cls": 67.04, "cls_std": 0.33},
                      "object": {"loc": 45.20, "loc_std": 0.20, "cls": 65.21, "cls_std": 0.25}},
    "internvl-3.5-8b": {"baseline": {"loc": 72.64, "cls": 83.30},
                        "full": {"loc": 4.70, "loc_std": 0.20, "cls": 81.19, "cls_std": 0.39},
                        "object": {"loc": 37.70, "loc_std": 0.40, "cls": 83.15, "cls_std": 0.40}},
}  # fmt: skip

# Table 3 (sec. 3.1.2, InternVL only): object tokens ablated in one kind of view, (view, padding)
# -> token % of that view, loc %, cls %.
TABLE3 = {
    "internvl-3.5-8b": {
        ("none", 0): {"token": 0, "loc": 72.64, "cls": 83.30},
        ("local", -1): {"token": 5, "loc": 72.41, "cls": 82.52},
        ("local", 0): {"token": 11, "loc": 62.93, "cls": 76.65},
        ("local", 1): {"token": 15, "loc": 63.20, "cls": 77.45},
        ("global", -1): {"token": 5, "loc": 72.58, "cls": 83.14},
        ("global", 0): {"token": 14, "loc": 36.20, "cls": 73.80},
        ("global", 1): {"token": 24, "loc": 25.86, "cls": 72.06},
    }
}

# Appendix 7.5 / Fig. 10, the drops the text states (points, object tokens ablated; the figure's
# bars are not given as numbers): (view, size bucket, task) -> drop. The text's "+6.5%" for local
# ablation on large objects does not say which task, so it is left out.
FIG10_TEXT = {
    "internvl-3.5-8b": {
        ("global", "small", "localization"): -64.8,
        ("local", "small", "localization"): -54.3,
        ("global", "large", "localization"): -26.1,
    }
}

# Sec. 3.2 / Fig. 2 and app. 8 / Fig. 11: the LLM layer where positional decoding peaks. The
# main text ("peaks around layer 12 for LLaVA-7B, layer 13 for LLaVA-13B and layer 7 for
# InternVL3.5-8B") and Fig. 11's caption ("layer 13 in LLaVA-7B, layer 12 in LLaVA-13B and layer
# 7 for InternVL3.5") disagree for the two LLaVA models; both are kept. Fig. 2's accuracies are
# not given as numbers.
PROBE_BEST_LAYER = {
    "llava-1.5-7b": {"text": 12, "appendix": 13},
    "llava-1.5-13b": {"text": 13, "appendix": 12},
    "internvl-3.5-8b": {"text": 7, "appendix": 7},
}
# Sec. 3.2: "Classifiers are trained for 10 epochs on 50,000 ImageNet images and evaluated on
# 10,000 images."
PROBE_SETUP = {"n_train": 50_000, "n_test": 10_000, "epochs": 10}

# Sec. 3.3.2 (Fig. 4 / 14): heads shared by the localization and classification top-k by mean
# MF, k -> count. Top-10: "only two heads in LLaVA and one in InternVL" (taken to hold for both
# LLaVA sizes); top-50: "20 for LLaVA-7B, 15 for LLaVA-13B, and 18 for InternVL".
MEDIATION_OVERLAP = {
    "llava-1.5-7b": {10: 2, 50: 20},
    "llava-1.5-13b": {10: 2, 50: 15},
    "internvl-3.5-8b": {10: 1, 50: 18},
}
# The paper's head ablation (sec. 3.3.3): each head's output set to zero, after the image. Rows
# written before the ablation variants were columns carry it implicitly.
HEAD_ABLATION_VARIANT = {"ablation": "zero", "positions": "post_image"}
# The paper's models' attention (query) heads, layers x heads: LLaVA-1.5's Vicuna-7B 32 x 32 and
# 13B 40 x 40, InternVL-3.5-8B's Qwen3-8B 36 x 32: the N of the overlap's chance (k * k / N).
MEDIATION_HEADS = {"llava-1.5-7b": 1024, "llava-1.5-13b": 1600, "internvl-3.5-8b": 1152}
