"""The law figures: loss against R per size (the paper's Figure 4), predicted against actual (Figure 7),
and loss against training compute 6*N*D."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from morph.core.artifacts.common import figure
from morph.core.artifacts.law import LAW_ZOO, LOSS_VS_COMPUTE, LOSS_VS_R, PREDICTED_VS_ACTUAL
from morph.core.figures import pyplot, save_png
from morph.law.fitting import predict_frame
from morph.law.forms import RATIO_COLUMN, predict

MARKERS = "osD^v<>ph*"
STYLES = {"inference-aware": "-", "chinchilla": "--"}


def _shape_at(n, r) -> tuple:
    """A (d_model, n_layers) of size n and aspect ratio r, from N ~ 12 n_layers d_model^2: the curves only
    need a shape to draw a form that reads width relative to N, not a buildable one."""
    d_model = (np.asarray(n) * np.asarray(r) / 12.0) ** (1.0 / 3.0)
    return d_model, d_model / np.asarray(r)


def _size_colors(df) -> dict:
    plt = pyplot()

    sizes = sorted(set(df["size"]))
    cmap = plt.get_cmap("viridis")
    return {s: cmap(i / max(1, len(sizes) - 1)) for i, s in enumerate(sizes)}


def _budget_markers(df) -> dict:
    budgets = sorted(set(df["group"].str.split("-").str[-1]))
    return {b: MARKERS[i % len(MARKERS)] for i, b in enumerate(budgets)}


def loss_vs_r(df, fits: dict, path: Path) -> None:
    """Each (size, budget) as points over R, with each law's curve at that size's mean N and budget (and its
    median MLP-to-attention ratio, for a conditional law fitted with that factor)."""
    plt = pyplot()

    colors, markers = _size_colors(df), _budget_markers(df)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    r_grid = np.geomspace(df["R"].min() / 1.2, df["R"].max() * 1.2, 100)
    for group, g in df.groupby("group"):
        size, budget = g["size"].iloc[0], group.split("-")[-1]
        ax.scatter(g["R"], g["loss"], color=colors[size], marker=markers[budget], zorder=3,
                   label=f"N≈{size:.3g}, {budget}")
        n, d = g["params"].mean(), g["tokens"].mean()
        for name, res in fits.items():
            curve = predict(res["coefficients"], n, d, *_shape_at(n, r_grid), g[RATIO_COLUMN].median())
            ax.plot(r_grid, curve * np.ones_like(r_grid), STYLES.get(name, ":"), color=colors[size], lw=1)
    for name in fits:
        ax.plot([], [], STYLES.get(name, ":"), color="grey", label=f"{name} fit")
    ax.set(xscale="log", xlabel="aspect ratio R = d_model / n_layers", ylabel="loss",
           title="Loss against aspect ratio, per size and budget")
    ax.legend(fontsize=7, ncol=2)
    save_png(fig, path)


def predicted_vs_actual(df, fit_mask: np.ndarray, fits: dict, path: Path) -> None:
    plt = pyplot()

    fig, axes = plt.subplots(1, len(fits), figsize=(4.5 * len(fits), 4.3), squeeze=False)
    lo, hi = df["loss"].min(), df["loss"].max()
    for ax, (name, res) in zip(axes[0], fits.items()):
        pred = predict_frame(res["coefficients"], df)
        lo, hi = min(lo, pred.min()), max(hi, pred.max())
        ax.scatter(df["loss"][fit_mask], pred[fit_mask], color="C0", label="fit set", zorder=3)
        ax.scatter(df["loss"][~fit_mask], pred[~fit_mask], facecolors="none", edgecolors="C3",
                   label="held out", zorder=3)
        held = res["metrics"]["heldout"]
        ax.set(title=f"{name} (tie {res['tie']})" + (f"\nheld-out RMSE {held['mse'] ** 0.5:.2g}" if held else ""),
               xlabel="actual loss", ylabel="predicted loss")
    pad = 0.02 * (hi - lo)
    for ax in axes[0]:
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=1, label="y = x")
        ax.set(xlim=(lo - pad, hi + pad), ylim=(lo - pad, hi + pad))
        ax.legend(fontsize=8)
    save_png(fig, path)


def loss_vs_compute(df, fits: dict, path: Path) -> None:
    """Runs over C = 6ND, with each law's prediction per budget along N (shape-aware forms at the median R and
    MLP-to-attention ratio). A fit line is drawn along one budget, so runs are coloured by budget (and marked by
    size) and each line takes its budget's colour."""
    plt = pyplot()

    budgets = sorted(set(df["group"].str.split("-").str[-1]))
    colors = {b: f"C{i % 10}" for i, b in enumerate(budgets)}
    sizes = sorted(set(df["size"]))
    markers = {s: MARKERS[i % len(MARKERS)] for i, s in enumerate(sizes)}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    compute = 6.0 * df["params"] * df["tokens"]
    for group, g in df.groupby("group"):
        size, budget = g["size"].iloc[0], group.split("-")[-1]
        ax.scatter(6.0 * g["params"] * g["tokens"], g["loss"], color=colors[budget], marker=markers[size],
                   zorder=3, label=f"N≈{size:.3g}, {budget}")
    n_grid = np.geomspace(df["params"].min() / 1.5, df["params"].max() * 1.5, 100)
    # each multiplier's budget label, as the runs' groups spell it
    budget_of = {m: g.split("-")[-1] for m, g in zip(df["multiplier"], df["group"]) if np.isfinite(m)}
    ratios = sorted(budget_of) or [float(np.median(df["tokens"] / df["params"]))]
    for name, res in fits.items():
        for ratio in ratios:
            d = ratio * n_grid
            shape = _shape_at(n_grid, df["R"].median())
            ax.plot(6.0 * n_grid * d, predict(res["coefficients"], n_grid, d, *shape, df[RATIO_COLUMN].median()),
                    STYLES.get(name, ":"), color=colors.get(budget_of.get(ratio), "k"), lw=1)
        ax.plot([], [], STYLES.get(name, ":"), color="k", label=f"{name} fit (D/N fixed; its budget's colour)")
    ax.set(xscale="log", xlabel="training compute C = 6·N·D (FLOP)", ylabel="loss",
           title="Loss against compute", xlim=(compute.min() / 3, compute.max() * 3))
    ax.legend(fontsize=7, ncol=2)
    save_png(fig, path)


def law_zoo(zoo: dict, path: Path) -> None:
    """Each form's pooled held-out RMSE per kind of fold (the report's unit), best form on top; a form that failed
    a fold gets no bar."""
    from morph.law.zoo import KINDS

    plt = pyplot()
    names, kinds = zoo["ranking"][::-1], list(zoo["folds"])
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.5 * len(names)))
    height = 0.8 / len(kinds)
    for j, kind in enumerate(kinds):
        rmse = [zoo["forms"][n]["cv"][kind]["mse"] for n in names]
        rmse = [m ** 0.5 if m is not None else None for m in rmse]
        y = np.arange(len(names)) + (j - (len(kinds) - 1) / 2) * height
        ax.barh(y, [m if m is not None else 0.0 for m in rmse], height, color=f"C{j}", label=KINDS[kind])
        for yi, m in zip(y, rmse):
            if m is None:
                ax.text(0, yi, " a fold failed", va="center", fontsize=8)
    if zoo["noise"]:
        ax.axvline(zoo["noise"]["sd"], color="k", ls="--", lw=1, label="run-to-run noise sd")
    ax.set_yticks(np.arange(len(names)), names)
    ax.set(xlabel="held-out RMSE (pooled over folds)", title="Law zoo: cross-validated error per form")
    ax.legend(fontsize=8)
    save_png(fig, path)


def write_figures(df, fit_mask: np.ndarray, fits: dict, zoo: dict, out_dir: Path) -> None:
    law_zoo(zoo, Path(figure(LAW_ZOO, out_dir)))
    loss_vs_r(df, fits, Path(figure(LOSS_VS_R, out_dir)))
    predicted_vs_actual(df, fit_mask, fits, Path(figure(PREDICTED_VS_ACTUAL, out_dir)))
    loss_vs_compute(df, fits, Path(figure(LOSS_VS_COMPUTE, out_dir)))
