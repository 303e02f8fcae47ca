"""The `lama` backend's real code path: simple-lama-inpainting's own pre- and post-processing
(padding to a multiple of 8, the mask threshold, the scaling to 0..1 and back) and our crop back
to the input size, run on a stand-in TorchScript module with big-lama.pt's call signature whose
output is known: the mask filled with magenta, everything else returned unchanged. The real
weights cannot be had here (docs/running/gpu.md#lama)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_snakemake
from PIL import Image

from vlmloc.data.coco import encode_mask
from vlmloc.data.inpainting import LamaInpainter, dilate, file_md5, remove_objects

MAGENTA = (255, 0, 255)


class StandInLama(torch.nn.Module):
    """big-lama.pt's call: image (1, 3, H, W) in 0..1, mask (1, 1, H, W) of 0/1, both padded to a
    multiple of 8 by simple-lama; returns the image with the mask filled, as LaMa's own forward
    composites its prediction into the masked region only."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        assert image.shape[2] % 8 == 0 and image.shape[3] % 8 == 0, "not padded to 8"
        assert mask.shape[1] == 1 and image.shape[1] == 3
        m = mask.to(image.dtype)
        fill = torch.tensor([1.0, 0.0, 1.0], dtype=image.dtype).view(1, 3, 1, 1)
        return m * fill + (1 - m) * image


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    path = tmp_path_factory.mktemp("lama") / "big-lama.pt"
    torch.jit.script(StandInLama()).save(str(path))
    return path


def expected(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = image.copy()
    out[mask] = MAGENTA
    return out


@pytest.mark.parametrize(
    ("height", "width"), [(37, 53), (64, 48), (1, 9), (200, 123)], ids=lambda v: str(v)
)
def test_lama_backend_fills_exactly_the_mask(stand_in, height, width, monkeypatch):
    monkeypatch.delenv("LAMA_MODEL", raising=False)
    rng = np.random.default_rng(height * width)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), bool)
    mask[: max(1, height // 3), : max(1, width // 4)] = True  # the top-left corner
    mask[:, -1] = True  # the whole right border column
    mask[-1, width // 2 :] = True  # half the bottom row
    out = LamaInpainter(str(stand_in), device="cpu", md5=file_md5(stand_in))(image, mask)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected(image, mask))


def test_an_empty_mask_changes_nothing(stand_in):
    image = np.random.default_rng(0).integers(0, 256, (21, 30, 3), dtype=np.uint8)
    out = LamaInpainter(str(stand_in), device="cpu")(image, np.zeros((21, 30), bool))
    np.testing.assert_array_equal(out, image)


def test_lama_weights_with_the_wrong_md5_are_refused(stand_in):
    with pytest.raises(ValueError, match="inpainting.lama_md5") as err:
        LamaInpainter(str(stand_in), device="cpu", md5="0" * 32)
    assert file_md5(stand_in) in str(err.value) and str(stand_in) in str(err.value)


def test_remove_objects_with_lama(stand_in, tmp_path):
    """The library's removal loop: the sample's mask, dilated, is what gets filled."""
    img = np.full((45, 61, 3), 90, np.uint8)
    img[10:20, 30:41] = (200, 30, 30)
    Image.fromarray(img).save(tmp_path / "a.png")
    mask = np.zeros((45, 61), bool)
    mask[10:20, 30:41] = True
    row = {
        "sample_id": "a_1",
        "image_path": str(tmp_path / "a.png"),
        "width": 61,
        "height": 45,
        "mask_rle": encode_mask(mask)["counts"],
        "ann_id": 1,
    }
    index = remove_objects(
        pd.DataFrame([row]),
        tmp_path / "out",
        backend="lama",
        dilate_px=2,
        lama_weights=str(stand_in),
        lama_md5=file_md5(stand_in),
        device="cpu",
    )
    out = np.asarray(Image.open(index.loc[0, "removed_path"]))
    np.testing.assert_array_equal(out, expected(img, dilate(mask, 2)))


@pytest.mark.slow
def test_remove_objects_rule_with_lama_on_fake_coco(workflow_dir, http_server, stand_in):
    """The rule remove_objects_shard with `inpainting: lama` on the fake COCO from a local server:
    each removed image is its original with exactly the sample's dilated mask filled."""
    from test_workflow_data import _coco_overlay, _fake_coco

    from vlmloc.data.filtering import sample_mask

    md5s = _fake_coco(http_server.root)
    overlay = _coco_overlay(http_server, md5s).replace("inpainting: opencv", "inpainting: lama")
    overlay = overlay.replace(
        "inpainting:\n  shards: 2",
        f"inpainting:\n  shards: 2\n  device: cpu\n  lama_weights: {stand_in}\n"
        f"  lama_md5: {file_md5(stand_in)}",
    )
    (workflow_dir / "coco.yaml").write_text(overlay)
    run_snakemake(workflow_dir, "results/coco/removed.parquet", "--configfile", "coco.yaml")
    samples = pd.read_parquet(workflow_dir / "results/coco/samples.parquet")
    removed = pd.read_parquet(workflow_dir / "results/coco/removed.parquet")
    assert len(removed) == len(samples) == 2
    for row in samples.merge(removed, on="sample_id").to_dict("records"):
        original = np.asarray(Image.open(workflow_dir / row["image_path"]).convert("RGB"))
        out = np.asarray(Image.open(workflow_dir / row["removed_path"]))
        np.testing.assert_array_equal(out, expected(original, dilate(sample_mask(row), 5)))
    log = (workflow_dir / "logs/remove_objects/coco/shard-0.log").read_text()
    assert "backend lama" in log
