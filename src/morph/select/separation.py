"""Which candidates the fitted law can tell apart, from its own predictive uncertainty.

The law's bootstrap refits (`fit.bootstrap`, kept in its JSON) each predict every candidate's loss; a
candidate is separated from the leader when the interval of its paired predicted-loss difference lies
above 0. Without refits the run-to-run sd of the loss stands in: a predicted gap below it is not a
separation.
"""
from __future__ import annotations

from statistics import NormalDist

import numpy as np

from morph.core.law_names import PARAMS_COUNTS

LEVEL = 0.95  # the two-sided level of a paired difference's interval


def n_column(law: dict) -> str:
    """The candidates' column that holds N as the law counts it."""
    return PARAMS_COUNTS[law.get("params_count", "total")]


def prediction_draws(law: dict, cands: list[dict], tokens: int) -> np.ndarray | None:
    """(refits x candidates) predicted losses at D_C, one row per bootstrap refit of the law; None without refits."""
    from morph.law.fitting import predict_loss

    draws = (law.get("bootstrap") or {}).get("draws")
    if not draws or not cands:
        return None
    params = np.array([c[n_column(law)] for c in cands], dtype=float)
    d_model = np.array([c["d_model"] for c in cands], dtype=float)
    n_layers = np.array([c["n_layers"] for c in cands], dtype=float)
    ratios = [c.get("mlp_attention_ratio") for c in cands]
    ratio = np.array(ratios, dtype=float) if all(r is not None for r in ratios) else None
    rows = [predict_loss({"law": law["law"], "coefficients": coeffs}, params, tokens, d_model, n_layers, ratio)
            for coeffs in draws]
    out = np.asarray(rows, dtype=float).reshape(len(draws), len(cands))
    return out[np.isfinite(out).all(axis=1)]  # a degenerate refit that predicts inf says nothing about the order


def interval(values) -> list[float]:
    """The central LEVEL percentile interval of values over the refits."""
    tail = 100 * (1 - LEVEL) / 2
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]


def predictive_interval(refits: np.ndarray, point: float, cv_rmse: float | None) -> list[float]:
    """A candidate's predicted loss with the law's whole uncertainty: the refits' LEVEL interval (the fit's own
    spread, which resampling the grid understates where the law extrapolates) widened in quadrature by the law's
    leave-one-size-out error, the error it made predicting sizes it did not see."""
    low, high = interval(refits)
    if cv_rmse is None:
        return [low, high]
    extra = NormalDist().inv_cdf((1 + LEVEL) / 2) * cv_rmse
    below, above = max(point - low, 0.0), max(high - point, 0.0)
    return [point - float(np.hypot(below, extra)), point + float(np.hypot(above, extra))]


def gap_interval(draws: np.ndarray, i: int, j: int) -> list[float]:
    """The LEVEL interval of candidate i's predicted loss minus candidate j's, paired over the refits."""
    return interval(draws[:, i] - draws[:, j])


def separated(ranked: list[dict], draws: np.ndarray | None, loss_sd: float | None) -> list[bool]:
    """For each candidate (ranked by point prediction, leader first): is its predicted loss above the leader's
    beyond the law's uncertainty? Each candidate also records the interval (or gap) it was judged on."""
    lead = ranked[0]
    out = []
    for i, c in enumerate(ranked):
        if i == 0:
            out.append(False)
            continue
        if draws is not None:
            low, high = gap_interval(draws, c["_col"], lead["_col"])
            c["gap_to_leader"] = {"point": c["predicted_loss"] - lead["predicted_loss"], "interval": [low, high],
                                  "from": f"{len(draws)} bootstrap refits of the law, {LEVEL:.0%} paired interval"}
            out.append(low > 0)
        elif loss_sd is not None:
            gap = c["predicted_loss"] - lead["predicted_loss"]
            c["gap_to_leader"] = {"point": gap, "from": f"no bootstrap refits; the run-to-run sd {loss_sd:.4f}"}
            out.append(gap >= loss_sd)
        else:
            c["gap_to_leader"] = {"point": c["predicted_loss"] - lead["predicted_loss"],
                                  "from": "no bootstrap refits and no replicated runs: every gap taken at face value"}
            out.append(c["predicted_loss"] > lead["predicted_loss"])
    return out


def bracket(tied: list[dict], k: int) -> list[dict]:
    """k of the candidates the law cannot order (`tied`, in predicted order), spread evenly over their latency
    range, fastest and slowest first, so that training them measures the whole range instead of betting on one
    end. With k = 1 nothing can be bracketed: the law's point leader stands, as unfavoured by latency as any."""
    if k == 1:
        return tied[:1]
    by_latency = sorted(tied, key=lambda c: (c["latency"]["median_s"], c["shape_id"]))
    picks = dict.fromkeys(round(i * (len(by_latency) - 1) / (k - 1)) for i in range(k))
    return [by_latency[i] for i in picks]


U_SHAPED = ("conditional", "kaplan")  # an optimum in the shape term: the effect between two shapes takes any sign


def sign_free(law: dict) -> bool:
    """Can the fitted form's R term lower the loss as well as raise it? A power term tied to alpha cannot."""
    return law["law"] in U_SHAPED or law.get("tie") != "all"


def r_effect(law: dict, cands: list[dict], tokens: int, practical: float) -> dict:
    """The shape effect the law found, as the predicted loss of the candidate with the highest R (d_model/n_layers)
    minus that of the lowest, both at one N (the candidates' median, as the law counts it) and D_C, so only the
    shape terms differ; with its interval over the refits. Identified only for a form whose R term can take either
    sign, when the interval clears 0 by `practical` (select.margin, on the baseline's predicted loss)."""
    from morph.law.fitting import predict_loss

    ratio = {c["shape_id"]: c["d_model"] / c["n_layers"] for c in cands}
    low, high = (min(cands, key=lambda c: ratio[c["shape_id"]]), max(cands, key=lambda c: ratio[c["shape_id"]]))
    n = float(np.median([c[n_column(law)] for c in cands]))

    def gap(fit: dict) -> float:
        ends = [float(predict_loss(fit, n, tokens, c["d_model"], c["n_layers"], c.get("mlp_attention_ratio")))
                for c in (high, low)]
        return ends[0] - ends[1]

    out = {"high_R": high["shape_id"], "low_R": low["shape_id"], "at_params": n, "point": gap(law),
           "gamma": (law.get("coefficients") or {}).get("gamma"), "gamma_ci": (law.get("ci") or {}).get("gamma")}
    refits = [gap({"law": law["law"], "coefficients": c}) for c in (law.get("bootstrap") or {}).get("draws", [])]
    refits = [g for g in refits if np.isfinite(g)]
    if len(refits) < 2:
        return out | {"interval": None, "identified": None,
                      "statement": "no bootstrap refits of the law: the R effect has no interval"}
    lo, hi = interval(refits)
    free = sign_free(law)
    identified = free and (lo > practical or hi < -practical)
    distance = min(abs(lo), abs(hi))
    why = (f", {distance:.4f} from 0, beyond the practical {practical:.4f}" if identified else
           f": its sign is fixed by the form ({law['law']}, tie {law.get('tie')}: gamma >= 0), so the data cannot say "
           "which way R moves the loss; a form whose R term takes either sign (conditional, kaplan, or an untied "
           "gamma) can" if not free else
           f": not {practical:.4f} (select.margin) clear of 0, so the R effect is not identified")
    return out | {"interval": [lo, hi], "identified": identified, "sign_free": free, "practical": practical,
                  "statement": (f"R {ratio[high['shape_id']]:.1f} ({high['shape_id']}) against "
                                f"R {ratio[low['shape_id']]:.1f} ({low['shape_id']}) at equal N and D_C: predicted "
                                f"loss {out['point']:+.4f}, {LEVEL:.0%} interval [{lo:+.4f}, {hi:+.4f}]{why}")}
