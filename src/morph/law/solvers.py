"""Multi-start solvers for the law forms in forms.py, each returning the best optimum it found.

- `lm`: least squares on the loss itself by Levenberg-Marquardt (scipy least_squares, method "lm"),
  the paper's fit.
- `huber-log`: Huber loss (delta = 1e-3) on log-loss residuals, summed over points, by L-BFGS-B, as in
  Hoffmann et al. (2022) and Besiroglu et al. (2024).

Multi-start: every point of the start grid is scored at once (one vectorised evaluation of the
objective), and the local solver runs from the `POLISH` best of them. A local solve from every grid
point costs ~150-200x more on the 900-point grid (benchmarks/fit.py) and found the same optimum there,
as did 64 polished starts against 1-8 on the Chinchilla and Gemstones data: the best-scoring grid
points already sit in the global basin.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from morph.core.errors import MorphError
from morph.core.law_names import SOLVERS
from morph.law.forms import Law, log_predict

HUBER_DELTA = 1e-3
# Besiroglu et al.'s grid for (e, a, b, alpha, beta); each form's shape term extends it (forms.FORMS).
GRID = {
    "e": (-1.0, -0.5, 0.0, 0.5, 1.0),
    "a": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "b": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "alpha": (0.0, 0.5, 1.0, 1.5, 2.0),
    "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
}
POLISH = 8
_CHUNK = 1 << 21  # grid points x rows evaluated at once, to bound memory


class FitError(MorphError):
    """The solver found no converged optimum; the message names the solver and the best residual."""


@dataclass
class Solution:
    theta: np.ndarray  # free vector
    objective: float  # the solver's own objective at theta (sum of squares, or summed Huber)
    rms: float  # root-mean-square loss residual, comparable across solvers
    converged: int  # local solves that converged
    tried: int  # local solves run
    grid_size: int  # start points scored


def grid_values(law: Law, p: str) -> tuple[float, ...]:
    """Start values of free parameter p: Besiroglu et al.'s, or its shape term's."""
    if p in GRID:
        return GRID[p]
    term = next(t for t in law.terms if p in t.params)
    return term.grid[term.params.index(p)]


def grid_points(law: Law, index: np.ndarray) -> np.ndarray:
    """The start-grid points at these flat indices (itertools.product order), without building the grid:
    the solver polishes only a handful of its 10^4-10^5 points."""
    axes = [np.asarray(grid_values(law, p), dtype=float) for p in law.free]
    coords = np.unravel_index(np.asarray(index, dtype=np.int64), [len(a) for a in axes])
    return np.stack([a[c] for a, c in zip(axes, coords)], axis=-1)


def start_grid(law: Law) -> np.ndarray:
    return grid_points(law, np.arange(np.prod([len(grid_values(law, p)) for p in law.free])))


def _pick(arr, idx: tuple) -> np.ndarray:
    """arr's slice at the leading grid indices idx, keeping axes it broadcasts along (length 1)."""
    if np.ndim(arr) == 0:
        return arr
    return arr[tuple(slice(i, i + 1) if n > 1 else slice(None) for i, n in zip(idx, arr.shape))]


def huber(r: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


class Objective:
    """One solver's objective on one data set, over the law's free vector."""

    def __init__(self, law: Law, solver: str, X: np.ndarray, y: np.ndarray):
        if solver not in SOLVERS:
            raise ValueError(f"unknown solver {solver!r}; choose one of {SOLVERS}")
        self.law, self.solver, self.X, self.y = law, solver, X, y
        self.logy = np.log(y)

    def _score(self, base: np.ndarray) -> np.ndarray:
        """Objective over the last (rows) axis, from predicted losses; inf where they overflow."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if self.solver == "lm":
                vals = ((base - self.y) ** 2).sum(axis=-1)
            else:
                vals = huber(np.log(base) - self.logy).sum(axis=-1)
        return np.where(np.isfinite(vals), vals, np.inf)

    def batch(self, thetas: np.ndarray) -> np.ndarray:
        """Objective for any set of free vectors: (K, n_free) -> (K,)."""
        out = np.empty(len(thetas))
        step = max(1, _CHUNK // len(self.y))
        for i in range(0, len(thetas), step):
            with np.errstate(over="ignore", invalid="ignore"):
                lp = log_predict(self.law, thetas[i:i + step] @ self.law.expand.T, self.X)
            out[i:i + step] = self._score(np.exp(lp))
        return out

    def grid_scores(self) -> np.ndarray:
        """Objective at every point of start_grid(law), in its order, by broadcasting over the grid's axes.

        Each term of the law depends on at most two free parameters, so it is built once per pair of
        grid values and the grid x rows array is only summed, logged and scored: ~8 operations per
        element instead of ~30. Every grid value is small enough that exp() needs no shift.
        """
        free, rows = self.law.free, self.X.shape[0]

        def value(p: str) -> np.ndarray:  # grid values of full parameter p, on its free axis
            q = self.law.free_of(p)
            shape = [1] * (len(free) + 1)
            shape[free.index(q)] = len(grid_values(self.law, q))
            return np.array(grid_values(self.law, q)).reshape(shape)

        log_n, log_d = self.X[:, 0], self.X[:, 1]
        parts = [np.exp(value("e")), np.exp(value("a") - value("alpha") * log_n),
                 np.exp(value("b") - value("beta") * log_d)]
        added, factor = self._shape_terms(value)
        parts.append(added)
        out = np.empty([len(grid_values(self.law, p)) for p in free])
        # One slice of the leading free axes at a time, each at most ~_CHUNK grid points x rows, bounds memory.
        lead = 1
        while lead < len(free) and np.prod(out.shape[lead:]) * rows > _CHUNK:
            lead += 1
        for idx in np.ndindex(*out.shape[:lead]):
            base = sum(_pick(v, idx) for v in parts) * _pick(factor, idx)
            out[idx] = self._score(np.broadcast_to(base, (*(1,) * lead, *out.shape[lead:], rows))).reshape(
                out.shape[lead:])
        return out.reshape(-1)

    def _shape_terms(self, value) -> tuple:
        """(added to L0, factor on it) over the grid, as log_predict defines each kind of term."""
        added, factor = 0.0, 1.0
        for j, term in enumerate(self.law.terms):
            p, q, x = value(term.params[0]), value(term.params[1]), self.X[:, 2 + j]
            if term.kind == "additive-power":
                added = added + np.exp(p + q * x)
            elif term.kind == "factor-power":
                factor = factor * (1.0 + np.exp(p + q * x))
            else:
                factor = factor * (1.0 + np.exp(p) * (x - q) ** 2)
        return added, factor

    def rms(self, theta: np.ndarray) -> float:
        with np.errstate(over="ignore", invalid="ignore"):
            lp = log_predict(self.law, self.law.expand @ theta, self.X)
            return float(np.sqrt(np.mean((np.exp(lp) - self.y) ** 2)))

    # -- local solves ------------------------------------------------------------------------
    def _residuals(self, theta):
        """Loss residuals and their jacobian; least_squares asks for both at each point, so keep the last."""
        key = theta.tobytes()
        if getattr(self, "_last", (None,))[0] != key:
            lp, dlp = log_predict(self.law, self.law.expand @ theta, self.X, grad=True)
            pred = np.exp(lp)
            self._last = (key, pred - self.y, (pred[:, None] * dlp) @ self.law.expand)
        return self._last[1:]

    def _huber_and_grad(self, theta):
        lp, dlp = log_predict(self.law, self.law.expand @ theta, self.X, grad=True)
        r = lp - self.logy
        # Scaled by 1/delta so L-BFGS-B's absolute stopping tests see an O(1) objective.
        f = huber(r).sum() / HUBER_DELTA
        g = (np.clip(r, -HUBER_DELTA, HUBER_DELTA) @ dlp) @ self.law.expand / HUBER_DELTA
        return f, g

    def local(self, x0: np.ndarray, max_iter: int) -> tuple[np.ndarray, float, bool]:
        from scipy.optimize import least_squares, minimize  # ~0.9 s to import; kept off `morph --help`

        with np.errstate(over="ignore", invalid="ignore"):
            if self.solver == "lm":
                res = least_squares(lambda t: self._residuals(t)[0], x0, jac=lambda t: self._residuals(t)[1],
                                    method="lm", xtol=1e-12, ftol=1e-12, gtol=1e-12,
                                    max_nfev=max_iter)
                return res.x, float(2 * res.cost), bool(res.status > 0 and np.isfinite(res.cost))
            res = minimize(self._huber_and_grad, x0, jac=True, method="L-BFGS-B",
                           options={"maxiter": max_iter, "ftol": 1e-13, "gtol": 1e-9})
            # The Huber kink can end a line search right at the optimum ("ABNORMAL"); a vanishing
            # gradient there is convergence all the same.
            ok = res.success or (res.status == 2 and np.max(np.abs(res.jac)) <= 1e-3 * max(1.0, abs(res.fun)))
            return res.x, float(res.fun * HUBER_DELTA), bool(ok and np.isfinite(res.fun))


def _representable(law: Law, theta: np.ndarray) -> bool:
    """Whether every named coefficient is a finite float; a solve that ran off to exp(>709) has not
    converged to anything usable, however small its gradient."""
    with np.errstate(over="ignore"):
        return bool(np.all(np.isfinite(list(law.coefficients(theta).values()))))


_serial_depth = 0


@contextmanager
def serial_blas():
    """One BLAS thread while solving: these problems are tiny, and on a busy machine OpenBLAS's
    spinning worker threads made each L-BFGS-B step 5-10x slower. Re-entrant and cheap when nested."""
    from threadpoolctl import threadpool_limits

    global _serial_depth
    if _serial_depth:
        yield
        return
    with threadpool_limits(1, user_api="blas"):
        _serial_depth += 1
        try:
            yield
        finally:
            _serial_depth -= 1


def solve(law: Law, solver: str, X: np.ndarray, y: np.ndarray, starts: np.ndarray | None = None,
          polish: int = POLISH, max_iter: int = 1000) -> Solution:
    """Best optimum over the start grid (or the given starts); FitError if no local solve converged."""
    obj = Objective(law, solver, X, y)
    scores = obj.grid_scores() if starts is None else obj.batch(np.atleast_2d(starts))
    order = [k for k in np.argsort(scores, kind="stable")[:polish] if np.isfinite(scores[k])]
    chosen = grid_points(law, order) if starts is None else np.atleast_2d(starts)[order]
    best, converged, best_any = None, 0, np.inf
    with serial_blas():
        for x0 in chosen:
            theta, value, ok = obj.local(x0, max_iter)
            if np.isfinite(value):
                best_any = min(best_any, value)
            ok = bool(ok and _representable(law, theta) and np.isfinite(obj.rms(theta)))
            if ok and (best is None or value < best[1]):
                best = (theta, value)
            converged += ok
    if best is None:
        raise FitError(
            f"solver {solver!r} did not converge for the {law.name} law (tie {law.tie}) from any of its "
            f"{len(order)} best starts (of {len(scores)}); best objective reached {best_any:.6g} "
            f"({'sum of squared loss residuals' if solver == 'lm' else 'summed Huber loss on log residuals'}). "
            "Check the data for outliers, or for too few distinct sizes, token counts or shapes."
        )
    theta, value = best
    return Solution(theta, value, obj.rms(theta), converged, len(order), len(scores))
