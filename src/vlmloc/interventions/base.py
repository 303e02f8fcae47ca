"""The intervention protocol shared by every experiment.

An intervention is a callable ``intervention(adapter, batch) -> context manager``: entered
around one model call of one batch, it registers its hooks and always removes exactly its own
handles. ``batch`` is a ``BatchContext``: which rows (the caller's query ids), where their visual
tokens sit, and which phase of the computation this is:

- ``"full"``: a whole sequence in one call (teacher-forced scoring, plain ``generate``);
- ``"prefix"``: the image prefix (system prompt + visual tokens), whose key/value cache the
  questions about the image then share;
- ``"suffix"``: a question's own tokens and its generated answer, continuing from that cache
  (``past_length`` tokens are already in it).

``touches_prefix`` says whether the intervention changes anything up to the last visual token.
Edits of visual embeddings do (they act in the prefix run); knockouts from post-image queries and
head patches after the image do not, so a runner may share one clean prefix run among them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..models.base import Adapter, Encoded, ImageLayout

PHASES = ("full", "prefix", "suffix")


@dataclass
class BatchContext:
    rows: list[int]  # per batch row: its index in the caller's list of queries
    image_positions: list[torch.Tensor]  # per row: sequence positions of its visual tokens
    layouts: list[ImageLayout]
    phase: str = "full"
    past_length: int = 0  # tokens already in the KV cache when this phase starts
    encoded: Encoded | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.phase not in PHASES:
            raise ValueError(f"unknown phase {self.phase!r}; one of {PHASES}")

    @classmethod
    def of(cls, encoded: Encoded, phase: str = "full", past_length: int = 0) -> BatchContext:
        rows = encoded.query_ids or list(range(len(encoded.layouts)))
        return cls(
            list(rows), encoded.image_positions, encoded.layouts, phase, past_length, encoded
        )


Intervention = Callable[[Adapter, BatchContext], contextlib.AbstractContextManager]


def enter(intervention: Intervention | None, adapter: Adapter, batch: BatchContext):
    """The intervention's context for this batch and phase (a no-op context for None)."""
    return intervention(adapter, batch) if intervention is not None else contextlib.nullcontext()


# value -> new value (or None: keep it); see ``hooked``
SiteFunction = Callable[[torch.Tensor], "torch.Tensor | None"]


@contextlib.contextmanager
def hooked(adapter: Adapter, functions: dict[str, SiteFunction]):
    """Registers ``functions[name]`` at each named site (``Adapter.site``): it sees the site's
    value (an output: forward hook; an input: forward pre-hook on the first argument) and may
    return a replacement. Removes exactly its own handles, also when the forward fails."""
    handles = []

    def output_hook(fn, site):
        def hook(_module, _args, output):
            new = fn(site.read(output))
            return None if new is None else site.write(output, new)

        return hook

    def input_hook(fn):
        def hook(_module, args):
            new = fn(args[0])
            return None if new is None else (new, *args[1:])

        return hook

    try:
        for name, fn in functions.items():
            site = adapter.site(name)
            if site.value == "output":
                handles.append(site.module.register_forward_hook(output_hook(fn, site)))
            else:
                handles.append(site.module.register_forward_pre_hook(input_hook(fn)))
        yield
    finally:
        for h in handles:
            h.remove()
