"""Unpacking downloaded archives into a folder, all or nothing."""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path


def extract(archive: str | Path, dest: str | Path, members_under: str | None = None) -> None:
    """Extract ``archive`` (zip or tar) into ``dest``.

    Extraction goes to a sibling temporary folder that is renamed at the end, so an interrupted
    job never leaves a half-filled ``dest``. ``members_under`` keeps only members below that
    prefix (e.g. one split of a large archive).
    """
    archive, dest = Path(archive), Path(dest)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                names = [
                    n for n in zf.namelist() if not members_under or n.startswith(members_under)
                ]
                zf.extractall(tmp, members=names)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = [
                    m
                    for m in tf.getmembers()
                    if not members_under or m.name.startswith(members_under)
                ]
                tf.extractall(tmp, members=members, filter="data")
        else:
            raise ValueError(f"{archive} is neither a zip nor a tar archive")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
