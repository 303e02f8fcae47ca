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
]
