"""Figures of the sanity checks: plain numbers (the checks' dicts) in, a matplotlib Figure out; the caller saves.

Every curve shows its spread over the analysed images: the mean with its 95% t interval (dark band) and
the 2.5-97.5 percentiles of the per-image values (light band); the figures that decide a verdict draw the
threshold or the random baseline the rule compares with.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

MEASURE_NAMES = {"spearman_abs": "Spearman |map|", "spearman_signed": "Spearman signed", "ssim": "SSIM"}
COLOURS = {"map": "C0", "random": "C7", "centre": "C1"}


def _band(ax, x, summaries, colour, label):
    def col(key):
        return np.array([np.nan if s[key] is None else s[key] for s in summaries], float)

    ax.plot(x, col("mean"), "-o", color=colour, label=label, markersize=3)
    ax.fill_between(x, col("ci_low"), col("ci_high"), color=colour, alpha=0.3, linewidth=0)
    ax.fill_between(x, col("p2_5"), col("p97_5"), color=colour, alpha=0.1, linewidth=0)


def plot_cascade(steps: list[str], similarity: dict[str, list[dict]], title: str, threshold: float | None = None
                 ) -> Figure:
    """Cascading randomization: similarity to the trained map (y) after re-initializing each layer from the top
    down (x: "trained", then the layer just re-initialized), one line per measure with its bands."""
    fig = Figure(figsize=(max(5.0, 0.9 * len(steps) + 2), 3.6), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(steps))
    for i, (measure, summaries) in enumerate(similarity.items()):
        _band(ax, x, summaries, f"C{i}", MEASURE_NAMES.get(measure, measure))
    if threshold is not None:
        ax.axhline(threshold, color="k", linestyle="--", linewidth=0.8, label=f"threshold {threshold}")
    ax.axhline(0, color="k", linewidth=0.5)
    ax.set_xticks(x, [s.split("/")[-1] for s in steps], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("re-initialized down to (cumulative, from the top)")
    ax.set_ylabel("similarity to the trained map")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    return fig


def plot_deletion_insertion(result: dict, title: str) -> Figure:
    """Deletion and insertion curves (a `checks.deletion_insertion` result): class probability against the
    fraction of pixels removed / inserted, for the map's ranking, a random one and the centre prior."""
    fig = Figure(figsize=(8, 3.3), layout="constrained")
    x = np.asarray(result["fractions"], float)
    for ax, kind in zip(fig.subplots(1, 2), ("deletion", "insertion")):
        for ranking, curve in result[kind].items():
            auc = curve["auc"]["mean"]
            _band(ax, x, curve["per_step"], COLOURS.get(ranking, "C3"), f"{ranking} (AUC {auc:.3f})")
        ax.set_xlabel(f"fraction of pixels {'removed' if kind == 'deletion' else 'inserted'}")
        ax.set_ylabel("class probability")
        ax.set_title(f"{kind}", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"{title}: {result['verdict']} (fill: {result['fill']})", fontsize=9)
    return fig


def plot_channel_deletion(results: dict[str, dict], title: str) -> Figure:
    """Test accuracy as channels are zeroed in ranked order (one line per ranking, {name: `checks.channel_deletion`
    result}) against random orders (mean and 2.5-97.5 percentile band of the orders)."""
    fig = Figure(figsize=(5, 3.4), layout="constrained")
    ax = fig.subplots()
    first = next(iter(results.values()))
    x = np.asarray(first["fractions"], float)
    ax.plot(x, first["random"]["accuracy_mean"], color="C7", label="random orders")
    ax.fill_between(x, first["random"]["p2_5"], first["random"]["p97_5"], color="C7", alpha=0.25, linewidth=0)
    for i, (name, result) in enumerate(results.items()):
        ax.plot(x, result["ranked"]["accuracy"], "-o", color=f"C{i}", markersize=3,
                label=f"{name} order (p = {result['p_value']:.3f}, {result['verdict']})")
    ax.set_xlabel("fraction of channels zeroed")
    ax.set_ylabel("test accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return fig


def plot_trunk_control(result: dict, title: str) -> Figure:
    """Per channel, the pixel rank correlation of the trained view with the random-trunk view (mean and 95%
    interval over images), against the flagging threshold (a `checks.randomized_trunk_control` result)."""
    fig = Figure(figsize=(max(4.0, 0.35 * len(result["channels"]) + 2), 3.2), layout="constrained")
    ax = fig.subplots()
    rows = result["channels"]
    x = np.arange(len(rows))
    mean = np.array([r["rank_correlation"]["mean"] for r in rows], float)
    low = np.array([np.nan if r["rank_correlation"]["ci_low"] is None else r["rank_correlation"]["ci_low"]
                    for r in rows], float)
    high = np.array([np.nan if r["rank_correlation"]["ci_high"] is None else r["rank_correlation"]["ci_high"]
                     for r in rows], float)
    colours = ["C3" if r["verdict"] == "shows the decoder" else "C2" if r["verdict"] == "shows the channel" else "C7"
               for r in rows]
    ax.bar(x, mean, color=colours, yerr=[mean - low, high - mean], capsize=2)
    ax.axhline(result["threshold"], color="k", linestyle="--", linewidth=0.8)
    ax.set_xticks(x, [str(r["channel"]) for r in rows], fontsize=7)
    ax.set_ylim(-1, 1)
    ax.set_xlabel("channel (red: shows the decoder, green: shows the channel, grey: unclear)")
    ax.set_ylabel("rank corr., trained vs random trunk")
    ax.set_title(title, fontsize=9)
    return fig
