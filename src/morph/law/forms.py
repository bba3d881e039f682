"""The scaling laws, their exponent tying, and the map between a solver's vector and named coefficients.

Both laws share one internal parametrisation, the one Hoffmann et al. (2022) fit in:

    theta = (e, a, b, alpha, beta[, l, gamma])  with  E = exp(e), A = exp(a), B = exp(b), eps = exp(l)

so  chinchilla:       L = exp(e) + exp(a - alpha log N) + exp(b - beta log D)
    inference-aware:  L = (that) * (1 + exp(l + gamma log R)),  R = d_model / n_layers.

E, A, B and eps are positive by construction: a loss floor, decaying size and data terms, and a shape
penalty. (gamma's sign is free when it is untied, so the shape term may still fall with R.)
Tying shares one free value between exponents; `expand` is the linear map free -> full.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from morph.law.names import LAWS, TIES

_FULL = {
    "chinchilla": ("e", "a", "b", "alpha", "beta"),
    "inference-aware": ("e", "a", "b", "alpha", "beta", "l", "gamma"),
}
# Internal name -> (coefficient name, whether it is stored as a log).
_NAMED = {"e": ("E", True), "a": ("A", True), "b": ("B", True), "alpha": ("alpha", False),
          "beta": ("beta", False), "l": ("eps", True), "gamma": ("gamma", False)}
COEFFICIENTS = {law: tuple(_NAMED[p][0] for p in full) for law, full in _FULL.items()}
EXPONENTS = ("alpha", "beta", "gamma")


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
    def shape_aware(self) -> bool:
        return self.name == "inference-aware"

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


def features(law: Law, N, D, R=None) -> np.ndarray:
    """Columns the log-prediction needs: (log N, log D[, log R]) as a (rows, 2 or 3) array."""
    cols = [np.log(np.asarray(N, dtype=float)), np.log(np.asarray(D, dtype=float))]
    if law.shape_aware:
        if R is None:
            raise ValueError("the inference-aware law needs R = d_model / n_layers")
        cols.append(np.log(np.asarray(R, dtype=float)))
    return np.stack(np.broadcast_arrays(*cols), axis=-1)


def log_predict(law: Law, theta_full: np.ndarray, X: np.ndarray, grad: bool = False):
    """log L for one full vector (n_full,) -> (rows,), or a batch (K, n_full) -> (K, rows).

    With grad=True (one vector only) also returns d logL / d theta_full, shape (rows, n_full).
    Written with plain elementwise operations: the local solvers call it thousands of times.
    """
    t = np.asarray(theta_full, dtype=float)
    e, a, b, al, be, *shape = (t[..., i, None] for i in range(t.shape[-1])) if t.ndim > 1 else t
    log_n, log_d = X[:, 0], X[:, 1]
    t_a, t_b = a - al * log_n, b - be * log_d
    top = np.maximum(np.maximum(e, t_a), t_b)  # logsumexp, shifted for overflow safety
    w_e, w_a, w_b = np.exp(e - top), np.exp(t_a - top), np.exp(t_b - top)
    s = w_e + w_a + w_b
    out = top + np.log(s)
    if law.shape_aware:
        z = shape[0] + shape[1] * X[:, 2]
        out = out + np.logaddexp(0.0, z)
    if not grad:
        return out
    if t.ndim > 1:
        raise ValueError("gradients are computed for one parameter vector at a time")
    jac = np.empty((len(t), len(log_n)))  # filled row by row: one contiguous write per parameter
    np.divide(w_e, s, out=jac[0])  # d logsumexp / d term = the term's share of the sum
    np.divide(w_a, s, out=jac[1])
    np.divide(w_b, s, out=jac[2])
    np.multiply(jac[1], -log_n, out=jac[3])
    np.multiply(jac[2], -log_d, out=jac[4])
    if law.shape_aware:
        np.tanh(0.5 * z, out=jac[5])  # d softplus(z)/dz = sigmoid(z), written overflow-free
        jac[5] = 0.5 * (1.0 + jac[5])
        np.multiply(jac[5], X[:, 2], out=jac[6])
    return out, jac.T


def predict(coeffs: dict[str, float], N, D, R=None) -> np.ndarray:
    """Loss from named coefficients: chinchilla if there is no 'eps', inference-aware otherwise."""
    N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
    base = coeffs["E"] + coeffs["A"] * N ** -coeffs["alpha"] + coeffs["B"] * D ** -coeffs["beta"]
    if "eps" not in coeffs:
        return base
    if R is None:
        raise ValueError("the inference-aware law needs R = d_model / n_layers")
    return base * (1.0 + coeffs["eps"] * np.asarray(R, dtype=float) ** coeffs["gamma"])
