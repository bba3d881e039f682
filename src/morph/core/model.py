"""The model section: the settings every shape shares (the loader turns them into ShapeRules)."""
from __future__ import annotations

from dataclasses import dataclass

from morph.core.schema import rule


@dataclass(frozen=True)
class Model:
    seq_len: int = rule(128, min=1)
    max_position_embeddings: int = rule(512, min=1)
    n_heads: int | None = rule(None, min=1)
    head_dim: int | None = rule(None, min=2)
    max_head_dim: int | None = rule(None, min=8)  # with n_heads: a wider head gets more heads (256: fused kernels)
    n_kv_heads: int | None = rule(None, min=1)
    ffn_multiple: int = rule(256, min=1)
    tie_embeddings: bool = rule(False)

