"""The scaling-law forms, their exponent tying, and the map between a solver's vector and named coefficients.

Every form is Chinchilla's L0(N, D) with zero or more shape terms, in the parametrisation Hoffmann et al.
(2022) fit in:

    log L0 = logsumexp(e, a - alpha log N, b - beta log D),  E = exp(e), A = exp(a), B = exp(b)

and each shape term acts on one shape feature x with two parameters (p, q):

    chinchilla:       L = L0
    inference-aware:  L = L0 * (1 + eps * R^gamma)                  x = log R, R = d_model / n_layers
    additive:         L = L0 + C * R^gamma                          x = log R
    conditional:      L = L0 * (1 + kappa * (log(d_model/sqrt N) - mu)^2) * (1 + kappa_r * (log r - nu)^2)
                      (Bian et al., 2025: width relative to N, and r = mlp_attention_ratio, MLP over attention
                      parameters per layer)
    kaplan:           L = L0 * (1 + kappa * (log R - rho)^2)        (Kaplan et al., 2020: an aspect-ratio penalty)

eps = exp(l), C = exp(c), kappa = exp(k) and kappa_r = exp(kr) are positive by construction, so each shape
term is a penalty (>= 0), the quadratic factors are U-shaped, and each fitted form stays a positive loss.
gamma's sign is free when it is untied, so a power term may still fall with R.

An optional term (the conditional law's ratio factor) drops out where the runs cannot identify it: the
table has no mlp_attention_ratio column, or fewer than 3 distinct ratios (within RATIO_TOLERANCE). Two
ratios are dropped too: a parabola through two points leaves its curvature and optimum on a ridge, so a
third ratio's prediction would be arbitrary. A `Law` then names the dropped features, its coefficients
lack the term's, and the fit says why (fitting.settle). Public run sets carry no ratio: there the
conditional law is the width factor alone.
Tying shares one free value between exponents; `expand` is the linear map free -> full.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import combinations

import numpy as np

from morph.core.law_names import LAWS, TIES

BASE = ("e", "a", "b", "alpha", "beta")


@dataclass(frozen=True)
class ShapeTerm:
    # "factor-power": L0 * (1 + exp(p) e^{qx}); "additive-power": L0 + exp(p) e^{qx};
    # "factor-u": L0 * (1 + exp(p) (x - q)^2)
    kind: str
    params: tuple[str, str]  # internal names of (p, q)
    feature: str  # "R": x = log(d_model/n_layers); "width": x = log(d_model/sqrt(N)); "ratio": x = log r
    grid: tuple[tuple[float, ...], tuple[float, ...]]  # start values of (p, q), beside Besiroglu et al.'s grid
    clause: str = ""  # an optional term's part of the formula, written only while it is fitted
    tolerance: float = 0.0  # feature values within this relative gap count as one when counting distinct ones

    @property
    def optional(self) -> bool:
        return bool(self.clause)

    @property
    def min_distinct(self) -> int:
        """Distinct feature values that identify (p, q): two for a power, three for a parabola."""
        return 3 if self.kind == "factor-u" else 2


@dataclass(frozen=True)
class Form:
    formula: str
    terms: tuple[ShapeTerm, ...] = ()


# A power term's grid: l or c from a 0.25% to a 100% share of the loss, gamma from falling to rising.
_POWER_GRID = ((-6.0, -4.0, -2.0, 0.0), (-0.5, 0.0, 0.5, 1.0))
# A U's curvature k = log kappa: the loss rises 0.03% to 14% one e-fold off the optimum.
_U_CURVATURE = (-8.0, -6.0, -4.0, -2.0)
RATIO_COLUMN = "mlp_attention_ratio"
# Ratios within 10% are one (as the zoo's sizes are): rounding ffn to model.ffn_multiple moves SwiGLU's
# default ratio 2 by up to 3*ffn_multiple/(4*d_model) between widths, jitter that cannot place a U's optimum.
RATIO_TOLERANCE = 0.10
# nu's grid spans the optimal ratio from e^-1 to e^2 (about 0.4 to 7), around SwiGLU's default 2.
_RATIO = ShapeTerm("factor-u", ("kr", "nu"), "ratio", (_U_CURVATURE, (-1.0, 0.0, 1.0, 2.0)),
                   clause=f" * (1 + kappa_r*(ln r - nu)^2), r = {RATIO_COLUMN}", tolerance=RATIO_TOLERANCE)
FORMS = {
    "chinchilla": Form("L = E + A*N^-alpha + B*D^-beta"),
    "inference-aware": Form("L = (E + A*N^-alpha + B*D^-beta) * (1 + eps*R^gamma), R = d_model/n_layers",
                            (ShapeTerm("factor-power", ("l", "gamma"), "R", _POWER_GRID),)),
    "additive": Form("L = E + A*N^-alpha + B*D^-beta + C*R^gamma, R = d_model/n_layers",
                     (ShapeTerm("additive-power", ("c", "gamma"), "R", _POWER_GRID),)),
    # mu's grid spans d_model/sqrt(N) from e^-4 to e^-1: real shapes sit near 1/sqrt(12 n_layers).
    "conditional": Form("L = (E + A*N^-alpha + B*D^-beta) * (1 + kappa*(ln(d_model/sqrt(N)) - mu)^2)",
                        (ShapeTerm("factor-u", ("k", "mu"), "width", (_U_CURVATURE, (-4.0, -3.0, -2.0, -1.0))),
                         _RATIO)),
    # rho's grid spans the optimal aspect ratio from e^1 to e^6 (about 3 to 400).
    "kaplan": Form("L = (E + A*N^-alpha + B*D^-beta) * (1 + kappa*(ln R - rho)^2), R = d_model/n_layers",
                   (ShapeTerm("factor-u", ("k", "rho"), "R", (_U_CURVATURE, (1.0, 2.0, 3.0, 4.0, 5.0, 6.0))),)),
}
assert tuple(FORMS) == LAWS, "names.LAWS and forms.FORMS must list the same forms"
# Internal name -> (coefficient name, whether it is stored as a log).
_NAMED = {"e": ("E", True), "a": ("A", True), "b": ("B", True), "alpha": ("alpha", False),
          "beta": ("beta", False), "l": ("eps", True), "gamma": ("gamma", False), "c": ("C", True),
          "k": ("kappa", True), "mu": ("mu", False), "rho": ("rho", False), "kr": ("kappa_r", True),
          "nu": ("nu", False)}
COEFFICIENTS = {law: tuple(_NAMED[p][0] for p in BASE + sum((t.params for t in f.terms), ()))
                for law, f in FORMS.items()}
EXPONENTS = ("alpha", "beta", "gamma")
FEATURES = {"R": "R = d_model/n_layers", "width": "d_model/sqrt(N)", "ratio": RATIO_COLUMN}


def droppable(name: str) -> list[tuple[str, ...]]:
    """Every set of the form's optional terms (by feature) that may drop out, none first."""
    optional = [t.feature for t in FORMS[name].terms if t.optional]
    return [c for k in range(len(optional) + 1) for c in combinations(optional, k)]


def law_of(coeffs: dict) -> Law:
    """The form (untied, with its dropped optional terms) whose coefficients these are."""
    for name in LAWS:
        for dropped in droppable(name):
            law = Law(name, dropped=dropped)
            if set(coeffs) == set(law.names):
                return law
    raise ValueError(f"coefficients {sorted(coeffs)} match no law form; known forms: "
                     + "; ".join(f"{law}: {', '.join(names)}" for law, names in COEFFICIENTS.items()))


@dataclass(frozen=True)
class Law:
    name: str
    tie: str = "none"
    dropped: tuple[str, ...] = ()  # features of optional terms the runs cannot identify (fitting.settle)

    def __post_init__(self):
        if self.name not in LAWS:
            raise ValueError(f"unknown law {self.name!r}; choose one of {LAWS}")
        if self.tie not in TIES:
            raise ValueError(f"unknown tie {self.tie!r}; choose one of {TIES}")
        optional = {t.feature for t in FORMS[self.name].terms if t.optional}
        if not set(self.dropped) <= optional:
            raise ValueError(f"the {self.name} law cannot drop {sorted(set(self.dropped) - optional)}; "
                             f"its optional terms: {sorted(optional) or 'none'}")

    @cached_property
    def terms(self) -> tuple[ShapeTerm, ...]:
        """The shape terms fitted, in the form's order: X's columns 2, 3, ... and theta's pairs after BASE."""
        return tuple(t for t in FORMS[self.name].terms if t.feature not in self.dropped)

    @cached_property
    def full(self) -> tuple[str, ...]:
        return BASE + sum((t.params for t in self.terms), ())

    @property
    def names(self) -> tuple[str, ...]:
        """Every coefficient by name, tied ones included."""
        return tuple(_NAMED[p][0] for p in self.full)

    @property
    def shape_aware(self) -> bool:
        return bool(self.terms)

    @staticmethod
    def term_names(term: ShapeTerm) -> tuple[str, ...]:
        """A shape term's coefficients by name."""
        return tuple(_NAMED[p][0] for p in term.params)

    @property
    def formula(self) -> str:
        return FORMS[self.name].formula + "".join(t.clause for t in self.terms)

    def free_of(self, p: str) -> str:
        """The free parameter that p takes its value from."""
        if p == "beta" and self.tie in ("alpha-beta", "all"):
            return "alpha"
        if p == "gamma" and self.tie == "all":
            return "alpha"
        return p

    @cached_property
    def free(self) -> tuple[str, ...]:
        return tuple(p for p in self.full if self.free_of(p) == p)

    @cached_property
    def expand(self) -> np.ndarray:
        """(n_full, n_free) 0/1 matrix: theta_full = expand @ theta_free."""
        m = np.zeros((len(self.full), len(self.free)))
        for i, p in enumerate(self.full):
            m[i, self.free.index(self.free_of(p))] = 1.0
        return m

    @property
    def n_free(self) -> int:
        return len(self.free)

    def coefficients(self, theta_free) -> dict[str, float]:
        full = self.expand @ np.asarray(theta_free, dtype=float)
        return {_NAMED[p][0]: float(np.exp(v) if _NAMED[p][1] else v) for p, v in zip(self.full, full)}

    def vector(self, coeffs: dict[str, float]) -> np.ndarray:
        """Named coefficients -> free vector (tied exponents read from the free one)."""
        out = []
        for p in self.free:
            name, is_log = _NAMED[p]
            v = float(coeffs[name])
            out.append(np.log(v) if is_log else v)
        return np.array(out)

    def free_names(self) -> tuple[str, ...]:
        """The free parameters by coefficient name (log-stored ones keep their name: 'E' means e = log E)."""
        return tuple(_NAMED[p][0] for p in self.free)


def term_feature(law: Law, term: ShapeTerm, N, d_model, n_layers, ratio) -> np.ndarray:
    """The log shape feature x that one of the law's terms reads."""
    if term.feature == "ratio":
        if ratio is None:
            raise ValueError(f"the {law.name} law needs {RATIO_COLUMN}")
        return np.log(np.asarray(ratio, dtype=float))
    if d_model is None or n_layers is None:
        raise ValueError(f"the {law.name} law needs d_model and n_layers")
    d_model = np.asarray(d_model, dtype=float)
    if term.feature == "R":
        return np.log(d_model / np.asarray(n_layers, dtype=float))
    return np.log(d_model) - 0.5 * np.log(np.asarray(N, dtype=float))


def features(law: Law, N, D, d_model=None, n_layers=None, ratio=None) -> np.ndarray:
    """Columns the log-prediction needs: (log N, log D, one shape feature x per term) as a (rows, 2 + terms) array."""
    cols = [np.log(np.asarray(N, dtype=float)), np.log(np.asarray(D, dtype=float))]
    cols += [term_feature(law, t, N, d_model, n_layers, ratio) for t in law.terms]
    return np.stack(np.broadcast_arrays(*cols), axis=-1)


def log_predict(law: Law, theta_full: np.ndarray, X: np.ndarray, grad: bool = False):
    """log L for one full vector (n_full,) -> (rows,), or a batch (K, n_full) -> (K, rows).

    With grad=True (one vector only) also returns d logL / d theta_full, shape (rows, n_full).
    Written with plain elementwise operations: the local solvers call it thousands of times.
    Term j reads X[:, 2 + j] and owns theta's entries 5 + 2j (p) and 6 + 2j (q).
    """
    t = np.asarray(theta_full, dtype=float)
    e, a, b, al, be, *shape = (t[..., i, None] for i in range(t.shape[-1])) if t.ndim > 1 else t
    log_n, log_d = X[:, 0], X[:, 1]
    # The logsumexp's terms, and the parameter each one's log-scale is (its gradient is its share of the sum).
    terms, scales = [e, a - al * log_n, b - be * log_d], [0, 1, 2]
    for j, term in enumerate(law.terms):
        if term.kind == "additive-power":
            terms.append(shape[2 * j] + shape[2 * j + 1] * X[:, 2 + j])
            scales.append(5 + 2 * j)
    top = terms[0]
    for term in terms[1:]:
        top = np.maximum(top, term)  # logsumexp, shifted for overflow safety
    weights = [np.exp(term - top) for term in terms]
    s = sum(weights)
    out = top + np.log(s)
    kept = []  # each factor's intermediates, for its gradient
    for j, term in enumerate(law.terms):
        p, q, x = shape[2 * j], shape[2 * j + 1], X[:, 2 + j]
        if term.kind == "factor-power":
            z = p + q * x
            out = out + np.logaddexp(0.0, z)
            kept.append(z)
        elif term.kind == "factor-u":
            dev = x - q
            u = np.exp(p) * dev * dev
            out = out + np.log1p(u)
            kept.append((dev, u))
        else:
            kept.append(None)
    if not grad:
        return out
    if t.ndim > 1:
        raise ValueError("gradients are computed for one parameter vector at a time")
    jac = np.empty((len(t), len(log_n)))  # filled row by row: one contiguous write per parameter
    for i, w in zip(scales, weights):
        np.divide(w, s, out=jac[i])
    np.multiply(jac[1], -log_n, out=jac[3])
    np.multiply(jac[2], -log_d, out=jac[4])
    for j, (term, mid) in enumerate(zip(law.terms, kept)):
        i = 5 + 2 * j
        if term.kind == "factor-u":
            dev, u = mid
            np.divide(u, 1.0 + u, out=jac[i])
            jac[i + 1] = -2.0 * np.exp(shape[2 * j]) * dev / (1.0 + u)
            continue
        if term.kind == "factor-power":
            np.tanh(0.5 * mid, out=jac[i])  # d softplus(z)/dz = sigmoid(z), written overflow-free
            jac[i] = 0.5 * (1.0 + jac[i])
        np.multiply(jac[i], X[:, 2 + j], out=jac[i + 1])  # both power terms: d/dq = d/dp * x
    return out, jac.T


def predict(coeffs: dict[str, float], N, D, d_model=None, n_layers=None, ratio=None) -> np.ndarray:
    """Loss from named coefficients, for arrays or scalars; the form is the one these coefficient names belong to.
    `ratio` is mlp_attention_ratio, read only by a law that fitted its ratio factor."""
    law = law_of(coeffs)
    shape = np.broadcast_shapes(*(np.shape(v) for v in (N, D, d_model, n_layers, ratio) if v is not None))

    def flat(v):
        return None if v is None else np.broadcast_to(np.asarray(v, dtype=float), shape).ravel()

    X = features(law, flat(N), flat(D), flat(d_model), flat(n_layers), flat(ratio))
    with np.errstate(over="ignore", divide="ignore"):  # a coefficient that underflowed to 0 is log 0 = -inf
        return np.exp(log_predict(law, law.vector(coeffs), X)).reshape(shape)
