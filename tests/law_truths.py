"""Every law form's loss written out by hand in plain numpy, apart from the code under test (nothing here
imports morph): the truths synthetic runs are drawn from and `morph.law.forms.predict` is checked against.

Chinchilla and the inference-aware law are the paper's equations (Hoffmann et al. 2022; the paper's law,
R = d_model / n_layers); the others are the zoo's: an additive aspect-ratio power, Bian et al.'s (2025)
conditional law (width relative to sqrt N, optionally times a factor in the MLP-to-attention ratio r), and
Kaplan et al.'s (2020) U-shaped aspect-ratio penalty. Coefficients are named as in a fit's output.
"""
from __future__ import annotations

import numpy as np


def _f(x) -> np.ndarray:
    return np.asarray(x, dtype=float)


def chinchilla(c: dict, n, d, d_model=None, n_layers=None, ratio=None) -> np.ndarray:
    """L = E + A N^-alpha + B D^-beta."""
    return c["E"] + c["A"] * _f(n) ** -c["alpha"] + c["B"] * _f(d) ** -c["beta"]


def inference_aware(c: dict, n, d, d_model, n_layers, ratio=None) -> np.ndarray:
    """L = (E + A N^-alpha + B D^-beta) (1 + eps R^gamma), R = d_model / n_layers."""
    r = _f(d_model) / _f(n_layers)
    return chinchilla(c, n, d) * (1 + c["eps"] * r ** c["gamma"])


def additive(c: dict, n, d, d_model, n_layers, ratio=None) -> np.ndarray:
    """L = E + A N^-alpha + B D^-beta + C R^gamma."""
    return chinchilla(c, n, d) + c["C"] * (_f(d_model) / _f(n_layers)) ** c["gamma"]


def conditional(c: dict, n, d, d_model, n_layers=None, ratio=None) -> np.ndarray:
    """L = L0 (1 + kappa (ln(d_model / sqrt N) - mu)^2), times (1 + kappa_r (ln r - nu)^2) when the
    coefficients hold the ratio factor's."""
    width = 1 + c["kappa"] * (np.log(_f(d_model) / np.sqrt(_f(n))) - c["mu"]) ** 2
    loss = chinchilla(c, n, d) * width
    if "kappa_r" in c:
        loss = loss * (1 + c["kappa_r"] * (np.log(_f(ratio)) - c["nu"]) ** 2)
    return loss


def kaplan(c: dict, n, d, d_model, n_layers, ratio=None) -> np.ndarray:
    """L = L0 (1 + kappa (ln R - rho)^2): a penalty for an aspect ratio away from its optimum e^rho."""
    return chinchilla(c, n, d) * (1 + c["kappa"] * (np.log(_f(d_model) / _f(n_layers)) - c["rho"]) ** 2)


LOSS = {"chinchilla": chinchilla, "inference-aware": inference_aware, "additive": additive,
        "conditional": conditional, "kaplan": kaplan}


def loss(law: str, c: dict, n, d, d_model=None, n_layers=None, ratio=None) -> np.ndarray:
    return LOSS[law](c, n, d, d_model, n_layers, ratio)
