"""The fit section: which law forms are fitted, how, and with what N."""
from __future__ import annotations

from dataclasses import dataclass

from morph.core.law_names import AUTO, LAWS, PAPER_LAWS, PARAMS_COUNTS, SOLVERS, TIES
from morph.core.schema import rule


@dataclass(frozen=True)
class Fit:
    laws: tuple[str, ...] = rule(list(PAPER_LAWS), min_len=1, each={"choices": LAWS})
    tie: str = rule("all", choices=TIES)
    solver: str = rule("lm", choices=SOLVERS)
    bootstrap: int = rule(200, min=0)
    fit_multiplier: float | None = rule(None, above=0.0)
    include_smallest_at_max: bool = rule(True)
    ablation_repeats: int = rule(5, min=1)
    # N in the law: every parameter, the non-embedding ones, or auto (the law zoo's lower cross-validated error).
    params_count: str = rule("total", choices=(*PARAMS_COUNTS, AUTO))
