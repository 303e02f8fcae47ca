"""Model-agnostic interventions, expressed through an adapter.

Each intervention is a callable ``intervention(adapter, encoded)`` returning a context manager
that registers its hooks for one batch and always removes exactly its own handles.
"""

from .visual_tokens import (
    ReplaceVisualTokens,
    VisualTokenEdit,
    mean_visual_embedding,
    random_token_indices,
)

__all__ = ["ReplaceVisualTokens", "VisualTokenEdit", "mean_visual_embedding", "random_token_indices"]
