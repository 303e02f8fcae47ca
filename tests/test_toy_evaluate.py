"""The held-out diagnoses of scripts/evaluate_toy.py: why localization answers miss, underfit or memorised."""

import numpy as np
import pandas as pd
import pytest

from vlmloc.data.shapes import ShapesSpec
from vlmloc.models import load_adapter
from vlmloc.models.tiny import build_tiny_llava
from vlmloc.toy.data import make_pool
from vlmloc.toy.evaluate import localization_breakdown, localization_errors, unique_object_queries

# one 200 x 100 image with two objects; the samples ask about object 1
COCO = {
    "annotations": [
        {"id": 1, "image_id": 7, "bbox": [10, 10, 40, 20]},
        {"id": 2, "image_id": 7, "bbox": [120, 50, 60, 40]},
    ]
}
SAMPLE = {
    "image_id": 7,
    "ann_id": 1,
    "width": 200,
    "height": 100,
    "bbox_x": 10,
    "bbox_y": 10,
    "bbox_w": 40,
    "bbox_h": 20,
}


def answers(preds, success):
    rows = []
    for i, (box, s) in enumerate(zip(preds, success, strict=True)):
        x1, y1, x2, y2 = box if box is not None else (np.nan,) * 4
        rows.append(
            {
                "sample_id": i,
                "condition": "original",
                "task": "localization",
                "status": "ok" if box else "unparsed",
                "pred_x1": x1,
                "pred_y1": y1,
                "pred_x2": x2,
                "pred_y2": y2,
                "success@0.5": s,
            }
        )
    # rows of other tasks and conditions are ignored
    rows.append({**rows[0], "condition": "removed"})
    rows.append({**rows[0], "task": "list"})
    return pd.DataFrame(rows)


def test_each_answer_is_put_down_to_its_cause():
    preds = [(14, 10, 50, 34), (118, 52, 180, 88), (60, 60, 70, 70), None]
    samples = pd.DataFrame([{"sample_id": i, **SAMPLE} for i in range(4)])
    err = localization_errors(answers(preds, [1.0, 0.0, 0.0, 0.0]), samples, COCO)
    assert err["kind"].tolist() == ["right_object", "other_object", "nowhere", "unparsed"]
    # |14-10|, |10-10|, |50-50|, |34-30| over the longer side 200
    assert err["coord_error"].iloc[0] == pytest.approx(8 / 4 / 200)
    assert err["rel_side"].iloc[0] == pytest.approx(np.sqrt(40 * 20) / 200)
    out = localization_breakdown(err)
    assert (
        out["share_right_object"]
        == out["share_other_object"]
        == out["share_nowhere"]
        == out["share_unparsed"]
        == 0.25
    )
    assert out["right_object_median_error"] == pytest.approx(0.01)
    assert out["right_object_success@0.5"] == 1.0
    # the object's side is 28 px of 200: the 0.075-0.15 bucket, 1 of 4 answers right
    assert out["success@0.5_side_0.075-0.15"] == 0.25 and out["n_side_0.075-0.15"] == 4


def test_fit_gap_asks_about_the_training_pool_own_objects(tmp_path):
    """The "train" scenes of scripts/evaluate_toy.py --fit-gap are the pool's scenes, object for object."""
    spec = ShapesSpec()
    build_tiny_llava(tmp_path)
    pool = make_pool(
        load_adapter("llava", tmp_path, dtype="float32", device="cpu"),
        spec,
        5,
        seed=7,
        progress=False,
    )
    _, prompts, truth = unique_object_queries(spec, 7, range(5))
    expected = [
        (spec.categories[o["category"]], o["box"], it.size)
        for it in pool
        for o in it.objects
        if o["unique"]
    ]
    assert len(expected) == len(truth) > 0
    for prompt, (box, w, h), (category, pool_box, size) in zip(
        prompts, truth, expected, strict=True
    ):
        assert category in prompt and box == pool_box and (w, h) == size
    # past the pool: other scenes
    assert unique_object_queries(spec, 7, range(5, 10))[2] != truth
