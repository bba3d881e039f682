"""The grid section: the sizes, shapes and token multipliers trained for the law, and their seed replicates."""
from __future__ import annotations

from dataclasses import dataclass

from morph.core.knobs import MAX_PARAMS, Knobs, ShapeSpec
from morph.core.schema import rule


@dataclass(frozen=True)
class SizeSpec(Knobs):
    params: int = rule(min=1, max=MAX_PARAMS)
    depths: tuple[int, ...] = rule(min_len=1, each={"min": 1})
    # Optional per-size multipliers, as in the paper where only the smallest size is over-trained.
    multipliers: tuple[float, ...] = rule((), each={"above": 0.0})


@dataclass(frozen=True)
class ReplicateSpec:
    """A grid run trained `seeds` times: its own seed is replicate 0, the others change init and data order."""
    run: str = rule()
    seeds: int = rule(check=lambda v: None if v >= 2 else
                      "must be at least 2: the run itself is the first seed, so 2 trains one replicate beside it")


@dataclass(frozen=True)
class Grid:
    multipliers: tuple[float, ...] = rule([20, 40, 160], min_len=1, each={"above": 0.0})
    sizes: tuple[SizeSpec, ...] = rule(())
    shapes: tuple[ShapeSpec, ...] = rule(())
    replicates: tuple[ReplicateSpec, ...] = rule(())
