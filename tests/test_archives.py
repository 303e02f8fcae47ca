import tarfile
import zipfile

import pytest

from vlmloc.data.archives import extract


def test_zip_members_under_prefix(tmp_path):
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("annotations/instances_val2017.json", "{}")
        zf.writestr("annotations/captions_val2017.json", "{}")
    extract(z, tmp_path / "out", members_under=("annotations/instances",))
    files = sorted(p.name for p in (tmp_path / "out").rglob("*.json"))
    assert files == ["instances_val2017.json"]


def test_tar_and_no_half_output_on_failure(tmp_path):
    t = tmp_path / "a.tar"
    (tmp_path / "f.txt").write_text("hi")
    with tarfile.open(t, "w") as tf:
        tf.add(tmp_path / "f.txt", arcname="VOCdevkit/VOC2012/JPEGImages/f.txt")
    extract(t, tmp_path / "voc")
    assert (tmp_path / "voc/VOCdevkit/VOC2012/JPEGImages/f.txt").read_text() == "hi"
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not an archive")
    with pytest.raises(ValueError):
        extract(bad, tmp_path / "x")
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.tmp").exists()
