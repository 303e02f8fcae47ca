"""A rule script's log: logging and stderr (tqdm bars, tracebacks) into its ``log:`` file."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path


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
