"""Comparisons of shapes trained at D_C under the same seeds, with t quantiles and stated degrees of freedom.

Seed j of every shape shares its init seed and data order, so losses move together within a seed. The model
is additive, loss[s, j] = shape effect + seed effect + noise: the residual sd, with (S-1)(r-1) degrees of
freedom over S shapes and r seeds, is the noise a paired difference of means sees, and the difference of two
shapes' means over r seeds has standard error sd * sqrt(2 / r).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95  # each one-sided bound's, and the multiple comparison's simultaneous, confidence


@dataclass(frozen=True)
class Noise:
    """One run's loss noise, the sd a difference of seed means is built from, with where it came from."""
    sd: float
    df: int
    seeds: int  # r: runs per shape behind each mean
    source: str

    @property
    def se_difference(self) -> float:
        """The standard error of one shape's mean loss minus another's, each over `seeds` runs."""
        return self.sd * math.sqrt(2 / self.seeds)

    def sd_interval(self, level: float = LEVEL) -> list[float]:
        """The chi-square interval of the true sd."""
        tail = (1 - level) / 2
        return [self.sd * math.sqrt(self.df / stats.chi2.ppf(1 - tail, self.df)),
                self.sd * math.sqrt(self.df / stats.chi2.ppf(tail, self.df))]

    def to_dict(self) -> dict:
        return asdict(self) | {"sd_interval": self.sd_interval(), "se_difference": self.se_difference}


def paired_noise(losses: dict[str, list[float]]) -> Noise | None:
    """The residual sd of the additive shape + seed model over shapes measured under the same r >= 2 seeds;
    None with fewer than two such shapes."""
    matrix = np.array(list(losses.values()), dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] < 2 or matrix.shape[1] < 2:
        return None
    s, r = matrix.shape
    resid = matrix - matrix.mean(axis=1, keepdims=True) - matrix.mean(axis=0, keepdims=True) + matrix.mean()
    df = (s - 1) * (r - 1)
    return Noise(float(np.sqrt((resid ** 2).sum() / df)), df, r,
                 f"residuals of shape + seed over {s} shapes x {r} paired seeds at D_C")


def t_quantile(noise: Noise, comparisons: int = 1, level: float = LEVEL) -> float:
    """One-sided t at LEVEL, Bonferroni-adjusted over `comparisons` bounds that must hold together."""
    return float(stats.t.ppf(1 - (1 - level) / comparisons, noise.df))


def versus(mean_a: float, mean_b: float, noise: Noise | None, margin: float, comparisons: int = 1) -> dict:
    """Shape a against b (a minus b in loss), judged against the margin delta by one-sided LEVEL bounds that hold
    simultaneously over `comparisons` shapes (the release is picked from them, so a bound on it alone would be
    optimistic): matches when the upper bound is at most delta, worse when the lower bound is above it, else
    inconclusive."""
    delta = mean_a - mean_b
    if noise is None:
        return {"delta_loss": delta, "upper": None, "lower": None, "margin": margin, "verdict": "inconclusive",
                "comparisons": comparisons, "better_beyond_noise": False, "seeds_to_decide": None}
    half = t_quantile(noise, comparisons) * noise.se_difference
    upper, lower = delta + half, delta - half
    verdict = "matches" if upper <= margin else "worse" if lower > margin else "inconclusive"
    return {"delta_loss": delta, "upper": upper, "lower": lower, "margin": margin, "verdict": verdict,
            "comparisons": comparisons, "delta_in_sd": delta / noise.sd, "better_beyond_noise": bool(upper < 0),
            "seeds_to_decide": seeds_to_decide(delta, margin, noise, comparisons) if verdict == "inconclusive"
            else None}


def seeds_to_decide(delta: float, margin: float, noise: Noise, comparisons: int) -> int | None:
    """Seeds per shape at which a bound would clear delta if the estimate stayed where it is (t at today's df)."""
    gap = abs(margin - delta)
    if gap == 0:
        return None
    return max(noise.seeds + 1, math.ceil(2 * (t_quantile(noise, comparisons) * noise.sd / gap) ** 2))


def mcb_upper(means: dict[str, float], noise: Noise | None, level: float = LEVEL) -> dict[str, float | None]:
    """Hsu's multiple comparisons with the best (lower loss is better): for each shape, a simultaneous upper bound
    on how far its true loss is above the best of the others', max(0, mean_i - min_j mean_j + c * se). The
    critical value c is one-sided t at the Bonferroni level over the other shapes, a conservative stand-in for
    Dunnett's. None for every shape without a noise estimate; 0 for a lone shape."""
    names = list(means)
    if len(names) == 1:
        return {names[0]: 0.0}
    if noise is None:
        return dict.fromkeys(names)
    c = t_quantile(noise, len(names) - 1, level) * noise.se_difference
    return {i: max(0.0, means[i] - min(means[j] for j in names if j != i) + c) for i in names}


def seeds_to_show_the_best(n_shapes: int, noise: Noise | None, margin: float) -> int | None:
    """Seeds per shape at which the best shape's MCB bound, c * se, would fall to delta if the sd stayed where it
    is: the precision that 'within delta of the best' needs here."""
    if noise is None or n_shapes < 2:
        return None
    return seeds_to_decide(0.0, margin, noise, n_shapes - 1)
