"""Model-agnostic interventions, expressed through an adapter.

Each intervention is a callable ``intervention(adapter, batch)`` (``base.BatchContext``) returning
a context manager that registers its hooks for one batch and always removes exactly its own handles.
"""

from .base import BatchContext, Intervention, enter, hooked
from .heads import HeadCapture, HeadPatch, HeadZero
from .knockout import AttentionKnockout
from .visual_tokens import (
    CopyVisualTokens,
    ReplaceVisualTokens,
    VisualTokenEdit,
    mean_visual_embedding,
    random_token_indices,
    visual_embedding_stats,
)

__all__ = [
    "AttentionKnockout",
    "BatchContext",
    "CopyVisualTokens",
    "HeadCapture",
    "HeadPatch",
    "HeadZero",
    "Intervention",
    "ReplaceVisualTokens",
    "VisualTokenEdit",
    "enter",
    "hooked",
    "mean_visual_embedding",
    "random_token_indices",
    "visual_embedding_stats",
]
