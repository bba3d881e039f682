"""Aggregates of timing samples: every sample is kept, the summary is median, p10, p90 and CV."""
from __future__ import annotations

import statistics


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default), q in [0, 100]."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(samples: list[float]) -> dict:
    if not samples:
        raise ValueError("no samples to summarize")
    mean = statistics.fmean(samples)
    # The CV of one sample is undefined, not zero.
    cv = statistics.stdev(samples) / mean if len(samples) > 1 and mean else None
    return {
        "n": len(samples),
        "median": statistics.median(samples),
        "p10": percentile(samples, 10),
        "p90": percentile(samples, 90),
        "mean": mean,
        "cv": cv,
    }
