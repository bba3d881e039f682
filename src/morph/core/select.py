"""The select section: the budgets N_C, D_C and T_C, the candidate shapes, the baseline and the top-k."""
from __future__ import annotations

from dataclasses import dataclass

from morph.core.backends import BACKENDS
from morph.core.knobs import MAX_PARAMS, Knobs, ShapeSpec
from morph.core.law_names import AUTO, LAWS
from morph.core.schema import rule, section

VALIDATE_WORDS = ("all", "none")


def _validate_rule(value: int | str) -> str | None:
    if isinstance(value, int):
        return None if value >= 1 else "must be at least 1 (or \"none\")"
    return None if value in VALIDATE_WORDS else f"must be a count or one of {', '.join(VALIDATE_WORDS)}"


@dataclass(frozen=True)
class RelativeLatency:
    """T_C as a fraction of a reference shape's measured latency, so a decision travels between machines."""
    factor: float = rule(check=lambda v: None if v > 0 else "must be above 0")
    relative_to: str = rule("baseline", choices=("baseline",))


MARGIN_UNITS = ("baseline_loss", "absolute")


@dataclass(frozen=True)
class Margin:
    """delta, the loss a shape may give up and still match: a fraction of the baseline's measured held-out loss
    (so it travels between scales and tokenizers) or an absolute loss."""
    value: float = rule(above=0.0)
    of: str = rule("baseline_loss", choices=MARGIN_UNITS)

    def absolute(self, baseline_loss: float) -> float:
        return self.value * baseline_loss if self.of == "baseline_loss" else self.value


@dataclass(frozen=True)
class MinThroughput:
    batch: int = rule(min=1)
    tokens_per_s: float = rule(above=0.0)


@dataclass(frozen=True)
class MaxKVCache:
    batch: int = rule(min=1)
    context: int = rule(min=1)  # prompt plus generated tokens
    mib: float = rule(above=0.0)


@dataclass(frozen=True)
class Select(Knobs):
    params: int = rule(min=1, max=MAX_PARAMS)
    tokens: int = rule(min=1)
    # Serving budgets, each optional and checked per candidate; T_C is absolute or relative.
    latency_budget_s: float | None = rule(None, above=0.0)
    latency_budget_relative: RelativeLatency | None = rule(None)
    min_throughput: MinThroughput | None = rule(None)
    max_kv_cache: MaxKVCache | None = rule(None)
    max_ttft_s: float | None = rule(None, above=0.0)
    law: str = rule("inference-aware", choices=(*LAWS, AUTO))
    depths: tuple[int, ...] = rule((), each={"min": 1})
    shapes: tuple[ShapeSpec, ...] = rule(())
    tolerance: float = rule(0.1, min=0.0)
    baseline: ShapeSpec = section()
    latency_metric: str = rule("hf", choices=BACKENDS)
    latency_source: str = rule("measured", choices=("measured", "model"))
    k: int = rule(2, min=1)
    # Hindsight: candidates within the parameter tolerance also trained at D_C, so the law's ranking is checked
    # against measured losses it did not see: "all", "none", or a count spread over the depths (at one N,
    # decode latency rises with depth, so this spreads them over the latency range).
    validate: int | str = rule("none", check=_validate_rule)
    # The release is decided on runs at D_C: each measured shape and the baseline with this many seeds, paired by
    # seed (seed j of every shape shares init seed and data order), when select.validate trains any.
    seeds: int = rule(3, min=1)
    # Pre-registered before any loss is seen: how much worse than the baseline (or the best) still counts as equal.
    margin: Margin = rule(Margin(0.02))

    @property
    def cap(self) -> float:
        """The parameter cap: N_C plus the tolerance."""
        return self.params * (1 + self.tolerance)

    def within_params(self, cand: dict) -> bool:
        """A candidate (as `morph candidates` describes it) inside N_C's tolerance and under its cap."""
        return cand["within_tolerance"] and cand["params"] <= self.cap

    def latency_budget_for(self, base_latency: float) -> float:
        """T_C in seconds against the baseline's latency on one machine and serving stack."""
        if self.latency_budget_s is not None:
            return self.latency_budget_s
        return self.latency_budget_relative.factor * base_latency
