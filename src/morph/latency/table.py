"""Read the latency table that `morph latency-collect` writes (results/latency.csv)."""
from __future__ import annotations

import csv
from pathlib import Path

from morph.core.errors import MorphError


def measured_settings(latency_csv: Path, backend: str) -> dict[str, dict[str, dict]]:
    """shape_id -> setting -> {median, p10, p90, cv, best, next_best, disturbed} for one backend, every timed
    setting."""
    if not latency_csv.exists():
        raise MorphError(f"{latency_csv}: missing latency table (run `morph latency-collect`)")
    found: dict[str, dict[str, dict]] = {}
    with open(latency_csv) as f:
        for row in csv.DictReader(f):
            if row["backend"] == backend:
                found.setdefault(row["shape_id"], {})[row["setting"]] = {
                    **{k: float(row[k]) for k in ("median", "p10", "p90")},
                    # the robust statistic and its interval, and whether other work competed (empty in old tables)
                    **{k: float(row[k]) if row.get(k) else None for k in ("cv", "best", "next_best")},
                    "disturbed": row.get("disturbed") == "True"}
    return found
