"""Glue for rule scripts: logging into the rule's log file, device resolution, atomic writes."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

import pandas as pd


def resolve_device(setting: str = "auto") -> str:
    if setting != "auto":
        return setting
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def logged(smk):
    """Send logging and stderr (tqdm bars, tracebacks) of a rule script to its ``log:`` file."""
    path = Path(smk.log[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as f:
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        old_err = sys.stderr
        sys.stderr = f
        try:
            yield logging.getLogger(f"vlmloc.rule.{smk.rule}")
        except BaseException:
            logging.getLogger("vlmloc").exception("rule %s failed", smk.rule)
            raise
        finally:
            sys.stderr = old_err
            root.removeHandler(handler)


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    """Atomic: a killed job never leaves a table that looks complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)


def write_tsv(df: pd.DataFrame, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, sep="\t", index=False)
    tmp.replace(path)
