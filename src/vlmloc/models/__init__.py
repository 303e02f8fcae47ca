"""Model adapters: one file per VLM family. Adding a family = one adapter file + an entry here."""

from __future__ import annotations

from .base import Adapter, Encoded, ImageLayout, View
from .internvl import InternVLAdapter
from .llava import LlavaAdapter
from .qwen2_5_vl import Qwen2_5_VLAdapter

ADAPTERS: dict[str, type[Adapter]] = {
    "llava": LlavaAdapter,
    "internvl": InternVLAdapter,
    "qwen2_5_vl": Qwen2_5_VLAdapter,
}


def load_adapter(family: str, path, **kw) -> Adapter:
    if family not in ADAPTERS:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(ADAPTERS)}")
    return ADAPTERS[family].from_pretrained(path, **kw)


def load_job_adapter(model: dict, device: str = "auto", threads: int = 1) -> Adapter:
    """A model job's adapter, as every model rule loads it: ``model`` is the rule's
    ``params.model`` (``family``, ``path`` and the load options), ``device`` "auto" is cuda when
    present, and torch gets the job's ``threads``."""
    import torch

    from ..workflow import resolve_device

    torch.set_num_threads(threads)
    m = dict(model)
    return load_adapter(m.pop("family"), m.pop("path"), device=resolve_device(device), **m)


def geometry_adapter(model: dict) -> Adapter:
    """A model's adapter without weights (``Adapter.geometry_only``), from a rule's
    ``params.model`` (``family``, ``path`` and the load options; dtype and attention are
    ignored): its ``layout`` says where each visual token sits, with no model loaded."""
    m = {k: v for k, v in model.items() if k not in ("dtype", "attn_implementation")}
    family = m.pop("family")
    if family not in ADAPTERS:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(ADAPTERS)}")
    return ADAPTERS[family].geometry_only(m.pop("path"), **m)


__all__ = [
    "ADAPTERS",
    "Adapter",
    "Encoded",
    "ImageLayout",
    "View",
    "geometry_adapter",
    "load_adapter",
    "load_job_adapter",
]
