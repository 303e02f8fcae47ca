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


__all__ = ["ADAPTERS", "Adapter", "Encoded", "ImageLayout", "View", "load_adapter"]
