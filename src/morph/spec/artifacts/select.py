"""The select stages' artifacts: the candidates, the selection, and the top-k slots it fills."""
from __future__ import annotations

from dataclasses import dataclass

from morph.spec.artifacts.common import figure
from morph.spec.artifacts.latency import LATENCY_CSV, LATENCY_MODEL
from morph.spec.interface import IN, OUT, Interface, flag

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
