"""The scaling-law forms, their exponent tying, and the map between a solver's vector and named coefficients.

Every form is Chinchilla's L0(N, D) with at most one shape term, in the parametrisation Hoffmann et al.
(2022) fit in:

    log L0 = logsumexp(e, a - alpha log N, b - beta log D),  E = exp(e), A = exp(a), B = exp(b)

and the shape term acts on one shape feature x with two parameters (p, q):

    chinchilla:       L = L0
    inference-aware:  L = L0 * (1 + eps * R^gamma)                  x = log R, R = d_model / n_layers
    additive:         L = L0 + C * R^gamma                          x = log R
    conditional:      L = L0 * (1 + kappa * (log(d_model/sqrt N) - mu)^2)   (Bian et al., 2025: width relative to N)
    kaplan:           L = L0 * (1 + kappa * (log R - rho)^2)        (Kaplan et al., 2020: an aspect-ratio penalty)

eps = exp(l), C = exp(c) and kappa = exp(k) are positive by construction, so the shape term is a penalty
(>= 0), the two quadratic factors are U-shaped, and each fitted form stays a positive loss. gamma's sign is
free when it is untied, so a power term may still fall with R.
Tying shares one free value between exponents; `expand` is the linear map free -> full.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from morph.law.names import LAWS, TIES

BASE = ("e", "a", "b", "alpha", "beta")


@dataclass(frozen=True)
class ShapeTerm:
    # "factor-power": L0 * (1 + exp(p) e^{qx}); "additive-power": L0 + exp(p) e^{qx};
    # "factor-u": L0 * (1 + exp(p) (x - q)^2)
    kind: str
    params: tuple[str, str]  # internal names of (p, q)
    feature: str  # "R": x = log(d_model/n_layers); "width": x = log(d_model/sqrt(N))
    grid: tuple[tuple[float, ...], tuple[float, ...]]  # start values of (p, q), beside Besiroglu et al.'s grid

    @property
    def min_distinct(self) -> int:
        """Distinct feature values that identify (p, q): two for a power, three for a parabola."""
        return 3 if self.kind == "factor-u" else 2


@dataclass(frozen=True)
class Form:
    formula: str
    term: ShapeTerm | None = None


# A power term's grid: l or c from a 0.25% to a 100% share of the loss, gamma from falling to rising.
_POWER_GRID = ((-6.0, -4.0, -2.0, 0.0), (-0.5, 0.0, 0.5, 1.0))
# A U's curvature k = log kappa: the loss rises 0.03% to 14% one e-fold off the optimum.
_U_CURVATURE = (-8.0, -6.0, -4.0, -2.0)
FORMS = {
    "chinchilla": Form("L = E + A*N^-alpha + B*D^-beta"),
    "inference-aware": Form("L = (E + A*N^-alpha + B*D^-beta) * (1 + eps*R^gamma), R = d_model/n_layers",
                            ShapeTerm("factor-power", ("l", "gamma"), "R", _POWER_GRID)),
    "additive": Form("L = E + A*N^-alpha + B*D^-beta + C*R^gamma, R = d_model/n_layers",
                     ShapeTerm("additive-power", ("c", "gamma"), "R", _POWER_GRID)),
    # mu's grid spans d_model/sqrt(N) from e^-4 to e^-1: real shapes sit near 1/sqrt(12 n_layers).
    "conditional": Form("L = (E + A*N^-alpha + B*D^-beta) * (1 + kappa*(ln(d_model/sqrt(N)) - mu)^2)",
                        ShapeTerm("factor-u", ("k", "mu"), "width", (_U_CURVATURE, (-4.0, -3.0, -2.0, -1.0)))),
    # rho's grid spans the optimal aspect ratio from e^1 to e^6 (about 3 to 400).
    "kaplan": Form("L = (E + A*N^-alpha + B*D^-beta) * (1 + kappa*(ln R - rho)^2), R = d_model/n_layers",
                   ShapeTerm("factor-u", ("k", "rho"), "R", (_U_CURVATURE, (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)))),
}
assert tuple(FORMS) == LAWS, "names.LAWS and forms.FORMS must list the same forms"
# Internal name -> (coefficient name, whether it is stored as a log).
_NAMED = {"e": ("E", True), "a": ("A", True), "b": ("B", True), "alpha": ("alpha", False),
          "beta": ("beta", False), "l": ("eps", True), "gamma": ("gamma", False), "c": ("C", True),
          "k": ("kappa", True), "mu": ("mu", False), "rho": ("rho", False)}
_FULL = {law: BASE + (f.term.params if f.term else ()) for law, f in FORMS.items()}
COEFFICIENTS = {law: tuple(_NAMED[p][0] for p in full) for law, full in _FULL.items()}
EXPONENTS = ("alpha", "beta", "gamma")
FEATURES = {"R": "R = d_model/n_layers", "width": "d_model/sqrt(N)"}


def law_of(coeffs: dict) -> str:
    """The form whose coefficients these are."""
    for law, names in COEFFICIENTS.items():
        if set(coeffs) == set(names):
            return law
    raise ValueError(f"coefficients {sorted(coeffs)} match no law form; known forms: "
                     + "; ".join(f"{law}: {', '.join(names)}" for law, names in COEFFICIENTS.items()))


@dataclass(frozen=True)
class Law:
    name: str
    tie: str = "none"

    def __post_init__(self):
        if self.name not in LAWS:
            raise ValueError(f"unknown law {self.name!r}; choose one of {LAWS}")
        if self.tie not in TIES:
            raise ValueError(f"unknown tie {self.tie!r}; choose one of {TIES}")

    @property
    def full(self) -> tuple[str, ...]:
        return _FULL[self.name]

    @property
    def term(self) -> ShapeTerm | None:
        return FORMS[self.name].term

    @property
    def shape_aware(self) -> bool:
        return self.term is not None

    @property
    def term_names(self) -> tuple[str, ...]:
        """The shape term's coefficients by name (empty for Chinchilla)."""
        return tuple(_NAMED[p][0] for p in self.term.params) if self.term else ()

    @property
    def formula(self) -> str:
        return FORMS[self.name].formula

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


def shape_feature(law: Law, N, d_model, n_layers) -> np.ndarray | None:
    """The log shape feature x the law's term reads; None for Chinchilla."""
    if law.term is None:
        return None
    if d_model is None or n_layers is None:
        raise ValueError(f"the {law.name} law needs d_model and n_layers")
    d_model = np.asarray(d_model, dtype=float)
    if law.term.feature == "R":
        return np.log(d_model / np.asarray(n_layers, dtype=float))
    return np.log(d_model) - 0.5 * np.log(np.asarray(N, dtype=float))


def features(law: Law, N, D, d_model=None, n_layers=None) -> np.ndarray:
    """Columns the log-prediction needs: (log N, log D[, shape feature x]) as a (rows, 2 or 3) array."""
    cols = [np.log(np.asarray(N, dtype=float)), np.log(np.asarray(D, dtype=float))]
    x = shape_feature(law, N, d_model, n_layers)
    if x is not None:
        cols.append(x)
    return np.stack(np.broadcast_arrays(*cols), axis=-1)


def log_predict(law: Law, theta_full: np.ndarray, X: np.ndarray, grad: bool = False):
    """log L for one full vector (n_full,) -> (rows,), or a batch (K, n_full) -> (K, rows).

    With grad=True (one vector only) also returns d logL / d theta_full, shape (rows, n_full).
    Written with plain elementwise operations: the local solvers call it thousands of times.
    """
    t = np.asarray(theta_full, dtype=float)
    e, a, b, al, be, *shape = (t[..., i, None] for i in range(t.shape[-1])) if t.ndim > 1 else t
    kind = law.term.kind if law.term else None
    log_n, log_d = X[:, 0], X[:, 1]
    terms = [e, a - al * log_n, b - be * log_d]
    if kind == "additive-power":  # one more term inside the logsumexp
        terms.append(shape[0] + shape[1] * X[:, 2])
    top = terms[0]
    for term in terms[1:]:
        top = np.maximum(top, term)  # logsumexp, shifted for overflow safety
    weights = [np.exp(term - top) for term in terms]
    s = sum(weights)
    out = top + np.log(s)
    if kind == "factor-power":
        z = shape[0] + shape[1] * X[:, 2]
        out = out + np.logaddexp(0.0, z)
    elif kind == "factor-u":
        dev = X[:, 2] - shape[1]
        u = np.exp(shape[0]) * dev * dev
        out = out + np.log1p(u)
    if not grad:
        return out
    if t.ndim > 1:
        raise ValueError("gradients are computed for one parameter vector at a time")
    jac = np.empty((len(t), len(log_n)))  # filled row by row: one contiguous write per parameter
    for i, w in enumerate(weights):  # d logsumexp / d term = the term's share of the sum
        np.divide(w, s, out=jac[i if i < 3 else 5])
    np.multiply(jac[1], -log_n, out=jac[3])
    np.multiply(jac[2], -log_d, out=jac[4])
    if kind == "factor-power":
        np.tanh(0.5 * z, out=jac[5])  # d softplus(z)/dz = sigmoid(z), written overflow-free
        jac[5] = 0.5 * (1.0 + jac[5])
    if kind == "factor-u":
        np.divide(u, 1.0 + u, out=jac[5])
        jac[6] = -2.0 * np.exp(shape[0]) * dev / (1.0 + u)
    elif kind is not None:  # both power terms: d/dq = d/dp * x
        np.multiply(jac[5], X[:, 2], out=jac[6])
    return out, jac.T


def predict(coeffs: dict[str, float], N, D, d_model=None, n_layers=None) -> np.ndarray:
    """Loss from named coefficients, for arrays or scalars; the form is the one these coefficient names belong to."""
    law = Law(law_of(coeffs))
    shape = np.broadcast_shapes(*(np.shape(v) for v in (N, D, d_model, n_layers) if v is not None))

    def flat(v):
        return None if v is None else np.broadcast_to(np.asarray(v, dtype=float), shape).ravel()

    X = features(law, flat(N), flat(D), flat(d_model), flat(n_layers))
    with np.errstate(over="ignore", divide="ignore"):  # a coefficient that underflowed to 0 is log 0 = -inf
        return np.exp(log_predict(law, law.vector(coeffs), X)).reshape(shape)
