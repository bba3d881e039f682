"""Shapes and architecture knobs as the grid and select sections write them."""
from __future__ import annotations

from dataclasses import dataclass

from morph.core.schema import rule

# A model no machine morph runs on could build (4 TB of fp32 weights): a typo, refused before anything runs.
MAX_PARAMS = 10**12


@dataclass(frozen=True)
class ShapeSpec:
    d_model: int = rule(min=2)
    n_layers: int = rule(min=1)


@dataclass(frozen=True, kw_only=True)
class Knobs:
    """Architecture knobs beside the depths: each value, and each combination of them, is built at every depth
    beside the default shape (grid.sizes entries and select alike; see expand.variants)."""
    # The SwiGLU MLP's parameters over attention's, per layer; the default width gives about 2 (8/3 x 3/4).
    # Bounded so that the id's -f<ratio> stays plain decimals.
    ffn_ratios: tuple[float, ...] = rule((), each={"check": lambda v: None if 0.01 <= v <= 100 else
                                                   "must be between 0.01 and 100 (MLP over attention parameters)"})
    n_kv_heads: tuple[int, ...] = rule((), each={"min": 1})  # grouped-query attention: divisors of the heads
