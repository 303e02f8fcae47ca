"""The probes' train and test images (config ``probes``): generated shapes scenes, or a seeded
sample of a folder of images (the paper: 50,000 ImageNet train and 10,000 test images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.image_sets import generated_images, image_files

GENERATED = "generated"


def probe_images(
    train: str, test: str, n_train: int, n_test: int, seed: int, shapes_spec: dict | None = None
) -> tuple[list, list]:
    """(train images, test images), never sharing an image.

    ``generated``: shapes scenes in memory, the train set from ``seed`` and the test set from
    ``seed + 1``. A folder: a seeded random sample of its images (all of them, recursively,
    sorted first, so the sample does not depend on the file system's order; a random sample,
    not the first n, because ImageNet's train folder is sorted by class). When train and test
    name the same folder, the test images are drawn from those not drawn for training.
    """
    if GENERATED in (train, test) and train != test:
        raise ValueError(
            "probes.train_images and probes.test_images: both `generated` or both folders"
        )
    if train == GENERATED:
        return generated_images(n_train, seed, shapes_spec), generated_images(
            n_test, seed + 1, shapes_spec
        )
    rng = np.random.default_rng(seed)
    train_files = image_files(train, "probes.train_images")
    if n_train > len(train_files):
        raise ValueError(
            f"probes.n_train: {n_train} images asked, {len(train_files)} under {train}"
        )
    order = rng.permutation(len(train_files))
    picked = [train_files[i] for i in sorted(order[:n_train])]
    if Path(test).resolve() == Path(train).resolve():
        rest = [train_files[i] for i in order[n_train:]]
        if n_test > len(rest):
            raise ValueError(
                f"probes.n_test: {n_test} images asked, {len(rest)} left under {test} after the train images"
            )
        return picked, sorted(rest[:n_test])
    test_files = image_files(test, "probes.test_images")
    if n_test > len(test_files):
        raise ValueError(f"probes.n_test: {n_test} images asked, {len(test_files)} under {test}")
    return picked, [test_files[i] for i in sorted(rng.permutation(len(test_files))[:n_test])]
