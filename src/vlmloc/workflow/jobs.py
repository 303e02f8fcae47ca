"""A model job's device and adapter, as every model rule resolves and loads them."""

from __future__ import annotations

from ..models import Adapter, load_adapter


def resolve_device(setting: str = "auto") -> str:
    if setting != "auto":
        return setting
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_job_adapter(model: dict, device: str = "auto", threads: int = 1) -> Adapter:
    """A model job's adapter, as every model rule loads it: ``model`` is the rule's
    ``params.model`` (``family``, ``path`` and the load options), ``device`` "auto" is cuda when
    present, and torch gets the job's ``threads``."""
    import torch

    torch.set_num_threads(threads)
    m = dict(model)
    return load_adapter(m.pop("family"), m.pop("path"), device=resolve_device(device), **m)
