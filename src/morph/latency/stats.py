"""Aggregates of timing samples: every sample is kept, the summary is median, p10, p90, CV and the best two.

Other work on the machine only ever adds time to a sample, so the fastest round is the least disturbed: `best`
(the minimum of times, the maximum of rates) is the statistic to compare shapes by, and `next_best`, the
second-best round, bounds how far it may be luck. Two shapes whose [best, next_best] intervals overlap are not
ordered by their timings."""
from __future__ import annotations

import statistics


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default), q in [0, 100]."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


BEST = "best of interleaved rounds (the fastest; other work only adds time), interval to the next best"


def summarize(samples: list[float], higher_is_better: bool = False) -> dict:
    if not samples:
        raise ValueError("no samples to summarize")
    ranked = sorted(samples, reverse=higher_is_better)
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
        "best": ranked[0],
        "next_best": ranked[1] if len(ranked) > 1 else None,  # one round gives no interval
    }
