"""A study's figures: each function takes arrays and returns a matplotlib Figure (no pyplot); the caller saves it."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def plot_accuracy_by_epoch(curves: dict[str, dict[str, np.ndarray]], runs: dict[str, int]) -> Figure:
    """Test accuracy against epoch, one line per variant with its 95% band.

    curves: {variant: {"epochs": (E,), "mean": (E,), "low": (E,), "high": (E,)}} (`statistics.epoch_bands`);
    runs: {variant: number of seeds averaged}.
    """
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.subplots()
    for i, (name, c) in enumerate(curves.items()):
        color = f"C{i}"
        ax.plot(c["epochs"], c["mean"], "-", color=color, lw=1.8, label=f"{name} (mean of {runs[name]} seeds)")
        ax.fill_between(c["epochs"], c["low"], c["high"], color=color, alpha=0.2, lw=0)
    ax.set(xlabel="epoch", ylabel="test accuracy",
           title="Test accuracy per epoch: mean over seeds, shaded 95% confidence interval")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_per_class(class_names: list[str], comparisons: list[dict]) -> Figure:
    """Per-class paired difference in test accuracy, one panel per pair of variants, with 95% intervals.

    class_names: (C,); comparisons: [{"label": "two-output - classifier-only", "difference": (C + 1,),
    "low": (C + 1,), "high": (C + 1,)}], the last entry of each array being the overall accuracy; NaN where a
    figure is undefined (an interval of one seed).
    """
    labels = list(class_names) + ["all classes"]
    y = np.arange(len(labels))[::-1].astype(float)
    y[-1] -= 0.5  # a gap before the overall row
    panels = max(len(comparisons), 1)
    fig = Figure(figsize=(4.2 * panels + 1.2, 0.38 * len(labels) + 1.6))
    axes = np.atleast_1d(fig.subplots(1, panels, sharey=True, squeeze=False)[0])
    for ax, comp in zip(axes, comparisons):
        diff, low, high = (100 * np.asarray(comp[k], float) for k in ("difference", "low", "high"))
        has_interval = ~np.isnan(low) & ~np.isnan(high)
        errors = np.vstack([np.where(has_interval, diff - low, 0), np.where(has_interval, high - diff, 0)])
        colors = np.where(~has_interval, "0.5", np.where(low > 0, "C2", np.where(high < 0, "C3", "0.35")))
        for yi, d, e0, e1, color in zip(y, diff, errors[0], errors[1], colors):
            ax.errorbar([d], [yi], xerr=[[e0], [e1]], fmt="o", color=color, ms=5, capsize=3, lw=1.2)
        ax.axvline(0, color="0.3", lw=0.8)
        ax.set(title=comp["label"], xlabel="difference in test accuracy (points)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, labels)
    fig.suptitle("Per-class difference, paired over seeds: mean and 95% CI (green above 0, red below, grey: "
                 "includes 0)", fontsize=9)
    fig.tight_layout()
    return fig
