"""A small latency model that travels between shapes:
T = c0 + c1 * n_layers + c2 * weight_bytes + c3 * kv_cache_bytes, all c >= 0.

c0 is fixed per-call cost, c1 per-layer launch/framework cost (what makes depth slow),
c2 the cost of streaming the weights, c3 the cost of reading the KV cache. Non-negative
least squares keeps each term physical; rows are weighted by 1/T so the fit minimises
relative error, the metric the leave-one-out check reports.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from morph.core.errors import MorphError
from morph.core.io import read_json

MODEL_SETTING = "full"  # the setting the model is fitted on, the paper's: batch 1, prompt_len -> new_tokens

FEATURES = ("intercept", "n_layers", "weight_bytes", "kv_cache_bytes")


def features(shape, context_tokens: int, bytes_per_value: int) -> list[float]:
    """The model's inputs for one shape at batch 1 with `context_tokens` = prompt + new tokens."""
    return [
        1.0,
        float(shape.n_layers),
        float(shape.weight_bytes(bytes_per_value)),
        float(shape.kv_cache_bytes(context_tokens, 1, bytes_per_value)),
    ]


def fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative coefficients minimising the squared relative error of x @ c against y."""
    from scipy.optimize import nnls

    x, y = np.asarray(x, float), np.asarray(y, float)
    if np.any(y <= 0):
        raise MorphError("latency model: every latency must be positive")
    a = x / y[:, None]
    # Columns span ~1 to ~1e9 (bytes); scale them to 1 so NNLS's tolerances are meaningful.
    scale = np.abs(a).max(axis=0)
    scale[scale == 0] = 1.0
    c, _ = nnls(a / scale, np.ones(len(y)))
    return c / scale


def leave_one_out(x: np.ndarray, y: np.ndarray) -> list[float]:
    """Relative error |pred - y| / y of each point predicted by a fit on all the others."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    errors = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        c = fit(x[keep], y[keep])
        errors.append(float(abs(x[i] @ c - y[i]) / y[i]))
    return errors


def _load(model) -> dict:
    return read_json(model) if isinstance(model, (str, Path)) else model


def predict_latency(model, shape, backend: str = "hf", device: str | None = None) -> float:
    """Predicted seconds for `shape` in the fitted setting (batch 1, prompt_len -> new_tokens).

    `model` is results/latency_model.json (a path or its parsed dict). `device` may be left out
    when the file holds fits for one device only.
    """
    data = _load(model)
    fits = [m for m in data["models"] if m["backend"] == backend and (device is None or m["device"] == device)]
    if not fits:
        have = sorted({(m["device"], m["backend"]) for m in data["models"]})
        raise MorphError(f"latency model: no fit for backend {backend!r}, device {device!r}; it has {have}")
    if len(fits) > 1:
        raise MorphError(
            f"latency model: fits for backend {backend!r} on several devices {[m['device'] for m in fits]}; name one"
        )
    m = fits[0]
    x = features(shape, m["prompt_len"] + m["new_tokens"], m["bytes_per_value"])
    return float(np.dot(x, [m["coefficients"][f] for f in FEATURES]))
