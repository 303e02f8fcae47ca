"""The vision tower's output, computed once per view in a job and reused by every condition.

Every prefix-touching condition of an experiment (token ablation, shuffle, containerization,
views, IG's input) runs the model on the same images again; the vision tower gives the same
output each time. While ``VisionCache.installed(adapter)`` is active, the tower's ``forward`` is
replaced by one that looks each view up by the bytes of its pixels (its content, so any view of
any image is found however the batch was composed), runs the stock forward only on the views it
has not seen, and hands the model an output of the same class. Everything after the tower (the
feature selection, InternVL's pixel shuffle, the projector and the hooks on it) runs as before,
so interventions on the visual tokens see what they saw without the cache.

Only what the model reads is kept: ``last_hidden_state`` and the hidden states of the
configured ``vision_feature_layer``; other entries of ``hidden_states`` are None, so a reader of
another layer fails loudly. While any hook sits on the tower (the probes' ``vision.i`` sites)
the cache is bypassed: a hit would skip the hook. Views are independent in both families'
towers (CLIP, InternViT), which is what makes a per-view cache exact; the first run of a batch
computes its views together, as without the cache, so the answers are bit-identical.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import OrderedDict

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .models.base import Adapter


def _key(view: torch.Tensor) -> bytes:
    data = view.detach().contiguous().cpu()
    digest = hashlib.blake2b(data.view(torch.uint8).numpy().tobytes(), digest_size=16)
    digest.update(f"{tuple(data.shape)}{data.dtype}".encode())
    return digest.digest()


def _hooked(module: torch.nn.Module) -> bool:
    """Whether a hook other than transformers' own (it records hidden states with hooks) is on it."""
    return any(
        not getattr(fn, "__module__", "").startswith("transformers.")
        for m in module.modules()
        for fn in (*m._forward_hooks.values(), *m._forward_pre_hooks.values())
    )


class VisionCache:
    """Least-recently-used per-view tower outputs, at most ``max_bytes`` of tensors.

    ``calls`` counts the stock forwards run, ``views_computed`` / ``hits`` the views computed
    and found: the tests read them and the model job logs them."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._store: OrderedDict[bytes, dict[str, torch.Tensor]] = OrderedDict()
        self.bytes = 0
        self._n_hidden = 0  # length of the tower's hidden_states tuple (0: it returned none)
        self.calls = self.views_computed = self.hits = 0

    @classmethod
    def from_mb(cls, mb: float) -> VisionCache:
        return cls(int(mb * 2**20))

    def __len__(self) -> int:
        return len(self._store)

    def _put(self, key: bytes, item: dict, n_hidden: int) -> None:
        self._n_hidden = n_hidden
        size = sum(t.numel() * t.element_size() for t in item.values())
        if size > self.max_bytes:
            return
        self._store[key] = item
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self._store.popitem(last=False)
            self.bytes -= sum(t.numel() * t.element_size() for t in old.values())

    @contextlib.contextmanager
    def installed(self, adapter: Adapter):
        """Route ``adapter.vision_tower`` through the cache for the block (restored after). A family
        whose tower does not see each view on its own (``Adapter.independent_views`` False:
        Qwen2.5-VL's windows over the whole image) runs uncached."""
        if not adapter.independent_views:
            yield self
            return
        tower = adapter.vision_tower
        stock = tower.forward
        layers = adapter.model.config.vision_feature_layer
        layers = [layers] if isinstance(layers, int) else list(layers)

        def forward(pixel_values=None, *args, **kwargs):
            if self.max_bytes <= 0 or args or pixel_values is None or _hooked(tower):
                return stock(pixel_values, *args, **kwargs)
            keys = [_key(v) for v in pixel_values]
            items: list[dict | None] = [self._store.get(k) for k in keys]
            missing = [i for i, it in enumerate(items) if it is None]
            if missing:
                out = stock(
                    pixel_values[missing] if len(missing) < len(keys) else pixel_values, **kwargs
                )
                self.calls += 1
                self.views_computed += len(missing)
                n_hidden = len(out.hidden_states) if out.hidden_states is not None else 0
                for row, i in enumerate(missing):
                    # clones: a view of the batch's tensors would keep them all alive
                    item = {"last": out.last_hidden_state[row].clone()}
                    item.update(
                        {
                            j % n_hidden: out.hidden_states[j][row].clone()
                            for j in layers
                            if n_hidden
                        }
                    )
                    items[i] = item
                    self._put(keys[i], item, n_hidden)
            self.hits += len(keys) - len(missing)
            for k in keys:
                if k in self._store:
                    self._store.move_to_end(k)
            hidden = None
            if self._n_hidden:
                hidden = tuple(
                    torch.stack([it[j] for it in items]) if j in items[0] else None
                    for j in range(self._n_hidden)
                )
            return BaseModelOutputWithPooling(
                last_hidden_state=torch.stack([it["last"] for it in items]), hidden_states=hidden
            )

        tower.forward = forward
        try:
            yield self
        finally:
            del tower.forward  # the instance attribute: the class's forward shows again
