"""The select stages' artifacts: the candidates, the selection, and the top-k slots it fills."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from morph.core.artifacts.common import figure
from morph.core.artifacts.latency import LATENCY_CSV, LATENCY_MODEL
from morph.core.interface import IN, OUT, Interface, flag
from morph.core.records import Record

CANDIDATES = "results/candidates.json"
SELECTION = "results/selection.json"
PARETO_FIGURE = "pareto"
REPORTED = {figure(PARETO_FIGURE): "Latency"}  # what `snakemake --report` shows, under which category
SLOT_PATTERN = r"top-\d+(-r\d+)?"  # a run directory the selection fills at run time, under a seed replicate


def slot(i: int) -> str:
    """The i-th (1-based) top-k slot's run id."""
    return f"top-{i}"


@dataclass(frozen=True, kw_only=True)
class Candidates(Interface):
    latency: str = flag(LATENCY_CSV, role=IN, help="measured latencies (latency-collect)")
    latency_model: str = flag(LATENCY_MODEL, role=IN, help="fitted latency model")
    out: str = flag(CANDIDATES, role=OUT, help="the candidate shapes")


@dataclass(frozen=True, kw_only=True)
class Select(Interface):
    candidates: str = flag(CANDIDATES, role=IN, help="the candidate shapes (morph candidates)")
    law: str = flag(role=IN, help="fitted law JSON (morph laws / morph fit)")
    out: str = flag(SELECTION, role=OUT, help="the ranking and the top-k")
    figure: str = flag(figure(PARETO_FIGURE), role=OUT, help="the Pareto view")


@dataclass(frozen=True, kw_only=True)
class SelectedSlot(Record):
    """One top-k entry of the selection: the slot and the shape `morph train --slot` trains in it."""
    WHAT: ClassVar[str] = "a top-k entry"

    slot: str
    run_id: str
    shape_id: str
    d_model: int
    n_layers: int
    ffn_ratio: float | None  # None: the default width rule
    n_kv_heads: int
    params: int
    predicted_loss: float
    indistinguishable_from: list[str]
    predicted_vs_baseline: dict


@dataclass(frozen=True, kw_only=True)
class Selection(Record):
    """results/selection.json (`morph select`): the budgets, the law's predictions, the ranking and the top-k."""
    WHAT: ClassVar[str] = "a selection"
    FIX: ClassVar[str] = "rebuild it with `morph select` (snakemake -j1 --force {path})"
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"law_choice", "params_read"})

    by_backend: dict  # backend -> its T_C, ranking and speed-ups
    budgets: dict  # params, tokens, latency_s, latency_rule, tolerance, k and the serving budgets set
    law: str
    params_count: str
    law_choice: dict | None = None  # with select.law auto: the form the zoo chose and why
    tokens: int
    warnings: list[str]
    law_warnings: list[str]
    noise: dict  # loss_sd, replicated_runs, law_cv_rmse
    ranking: dict
    r_effect: dict
    top_k: list[SelectedSlot]
    candidates: list[dict]  # every candidate, kept or dropped with its reason
    baseline: dict
    inputs: dict  # provenance: path -> sha256
    params_read: dict | None = None  # provenance: the params the stage read, when run as a stage command

    def slot(self, name: str) -> SelectedSlot | None:
        return next((e for e in self.top_k if e.slot == name), None)
