"""Plot of a loss-weight search: validation accuracy against reconstruction MSE, one point per trial.

Takes arrays and returns a matplotlib Figure; `keras_latent.tuning.results` computes the front and saves the file.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def plot_pareto(accuracy: np.ndarray, mse: np.ndarray, labels: list[str], on_front: np.ndarray,
                best: int, title: str = "", accuracy_se: np.ndarray | None = None, mse_se: np.ndarray | None = None,
                within_noise: np.ndarray | None = None, executions: int = 1) -> Figure:
    """Scatter of trials (N,) with the Pareto front joined, the best trial labelled and, for repeated trials,
    error bars of one standard error on both axes and the pairs within noise of the best ringed.

    accuracy: (N,) validation classifier accuracy (higher is better; the mean over a trial's executions);
    mse: (N,) validation reconstruction MSE (lower is better); labels: (N,) text beside each point, e.g.
    "ce 1, recon 2"; on_front: (N,) bool, trials no other trial beats on both metrics; best: index of the best
    trial; accuracy_se, mse_se: (N,) standard errors over the executions (None or zeros: no bars);
    within_noise: (N,) bool, pairs the paired test cannot tell apart from the best; executions: per trial.
    """
    accuracy, mse, on_front = np.asarray(accuracy, float), np.asarray(mse, float), np.asarray(on_front, bool)
    fig = Figure(figsize=(7.5, 5.5))
    ax = fig.subplots()
    if accuracy_se is not None and mse_se is not None and np.any(np.asarray(accuracy_se) > 0):
        ax.errorbar(mse, accuracy, yerr=accuracy_se, xerr=mse_se, fmt="none", ecolor="0.55", elinewidth=0.8,
                    capsize=2, zorder=1, label=f"± 1 standard error over {executions} executions")
    ax.scatter(mse[~on_front], accuracy[~on_front], s=36, c="0.6", label="trial", zorder=2)
    order = np.argsort(mse[on_front])
    ax.plot(mse[on_front][order], accuracy[on_front][order], "o-", color="C0", ms=7, drawstyle="steps-post",
            label="Pareto front (no trial better on both)", zorder=2)
    if within_noise is not None and np.any(within_noise):
        ringed = np.asarray(within_noise, bool)
        ax.scatter(mse[ringed], accuracy[ringed], s=150, facecolors="none", edgecolors="C2", linewidths=1.5,
                   zorder=3, label="within noise of the best (paired t-test p >= 0.05)")
    for i, (x, y, text) in enumerate(zip(mse, accuracy, labels)):
        style = dict(color="C3", weight="bold", fontsize=8) if i == best else dict(color="0.3", fontsize=7)
        ax.annotate(text, (x, y), xytext=(4, 4), textcoords="offset points", **style)
    ax.scatter([mse[best]], [accuracy[best]], s=220, marker="*", c="C3", zorder=4,
               label=f"best: {labels[best]} (accuracy {accuracy[best]:.3f}, MSE {mse[best]:.4f})")
    ax.set(xlabel="validation reconstruction MSE (lower is better)",
           ylabel="validation classifier accuracy (higher is better)"
           + (f", mean of {executions} executions" if executions > 1 else ""),
           title=title or "Loss-weight search: accuracy against reconstruction")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig
