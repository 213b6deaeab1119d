"""Figures of the latent analysis: each function takes arrays and returns a matplotlib Figure.

Channel grids wrap into rows (6 channels: one row; 16: two rows of 8; 128: eight rows of 16),
so a figure stays readable for any trunk width. The caller saves (keras_latent.files.save_figure).
"""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

TILE_INCHES = 1.15  # side of one image tile
MODE_CAPTIONS = {"keep": "tile ch k: decoded with only channel k kept",
                 "drop": "tile ch k: decoded with only channel k zeroed"}


def grid_columns(n_tiles: int) -> int:
    """Tiles per row: all in one row up to 8, rows of 8 up to 32, then rows of 16."""
    return n_tiles if n_tiles <= 8 else 8 if n_tiles <= 32 else 16


def _tile_axes(n_header: int, n_tiles: int, title: str):
    """A figure with a header row of `n_header` tiles over `n_tiles` wrapped tiles; unused axes hidden."""
    cols = max(grid_columns(n_tiles), n_header)
    rows = 1 + math.ceil(n_tiles / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(TILE_INCHES * cols + 0.9, TILE_INCHES * rows + 0.7),
                             squeeze=False, layout="constrained")
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    header = list(axes[0, :n_header])
    tiles = list(axes[1:].ravel()[:n_tiles])
    return fig, header, tiles, axes


def _show(ax, image, title: str, **kwargs):
    ax.set_axis_on()
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8, pad=2)
    return ax.imshow(image, interpolation="nearest", **kwargs)


def plot_channel_grid(original: np.ndarray, full: np.ndarray, tiles: np.ndarray, channels, title: str,
                      mode: str = "keep") -> plt.Figure:
    """Original, full reconstruction, then one decoded tile per channel titled `ch k`.

    original, full: uint8 (H, W, 3); tiles: uint8 (K, H, W, 3) for `channels` (K,).
    """
    fig, header, axes, _ = _tile_axes(2, len(tiles), f"{title}\n{MODE_CAPTIONS[mode]}")
    _show(header[0], original, "original")
    _show(header[1], full, "all channels")
    for ax, tile, channel in zip(axes, tiles, channels):
        _show(ax, tile, f"ch {channel}")
    return fig


def plot_activation_maps(original: np.ndarray, maps: np.ndarray, channels, title: str) -> plt.Figure:
    """The raw feature map of each channel, on one shared colour scale so strong and dead channels show.

    original: uint8 (H, W, 3); maps: float (h, w, K) activations for `channels` (K,).
    """
    fig, header, axes, all_axes = _tile_axes(1, maps.shape[-1], title)
    _show(header[0], original, "original")
    top = float(maps.max()) if maps.size and maps.max() > 0 else 1.0
    image = None
    for ax, channel, j in zip(axes, channels, range(maps.shape[-1])):
        image = _show(ax, maps[..., j], f"ch {channel}", cmap="viridis", vmin=0.0, vmax=top)
    if image is not None:
        fig.colorbar(image, ax=all_axes[1:].ravel().tolist(), shrink=0.8, label="activation")
    return fig


def _heatmap(ax, values: np.ndarray, channels, class_names, cmap: str, vmin: float, vmax: float, label: str,
             fmt: str):
    """classes x channels image with labelled ticks and, when small, the value in each cell."""
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    step = max(1, len(channels) // 32)
    ax.set_xticks(range(0, len(channels), step), [str(c) for c in channels[::step]], fontsize=7)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=8)
    ax.set_xlabel("channel")
    if len(channels) <= 16:
        for (r, c), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(c, r, format(v, fmt), ha="center", va="center", fontsize=6)
    ax.figure.colorbar(image, ax=ax, label=label)


def _figure_width(n_channels: int) -> float:
    return min(22.0, max(7.0, 0.45 * n_channels + 3.0))


def plot_channel_class_heatmap(mean_activation: np.ndarray, class_mean: np.ndarray, channels,
                               class_names, layer: str) -> plt.Figure:
    """Mean activation of each channel on each class, raw and relative to the channel's overall mean.

    mean_activation: (K,); class_mean: (K, classes), both for `channels` (K,).
    """
    channels = np.asarray(channels)
    fig, (ax_raw, ax_rel) = plt.subplots(2, 1, figsize=(_figure_width(len(channels)), 0.7 * len(class_names) + 2.5),
                                         layout="constrained")
    values = class_mean.T  # (classes, K)
    top = np.nanmax(values) if np.isfinite(values).any() else 1.0
    _heatmap(ax_raw, values, channels, class_names, "viridis", 0.0, top, "mean activation", ".2f")
    ax_raw.set_title(f"{layer}: mean activation per class (test split)", fontsize=10)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = 100.0 * (values / mean_activation[None, :] - 1.0)
    relative[:, mean_activation <= 0] = np.nan
    bound = max(1.0, float(np.nanmax(np.abs(relative)))) if np.isfinite(relative).any() else 1.0
    _heatmap(ax_rel, relative, channels, class_names, "coolwarm", -bound, bound, "% vs channel mean", ".0f")
    ax_rel.set_title(f"{layer}: class preference (% above or below the channel's mean; blank: dead channel)",
                     fontsize=10)
    return fig


def plot_ablation(channels, accuracy_drop: np.ndarray, intact_accuracy: float, per_class_drop: np.ndarray,
                  class_names, layer: str) -> plt.Figure:
    """Accuracy drop when each channel is zeroed (bars, intact accuracy marked), and the drop per class.

    accuracy_drop: (K,) fractions; per_class_drop: (K, classes); both for `channels` (K,).
    """
    channels = np.asarray(channels)
    x = np.arange(len(channels))
    fig, (ax_bar, ax_cls) = plt.subplots(2, 1, figsize=(_figure_width(len(channels)), 0.55 * len(class_names) + 5.0),
                                         layout="constrained", height_ratios=(1.0, 0.12 * len(class_names) + 0.3))
    drop_pp = 100.0 * np.asarray(accuracy_drop)
    ax_bar.bar(x, drop_pp, color=np.where(drop_pp >= 0, "C3", "C0"))
    ax_bar.axhline(0.0, color="k", lw=1.0, ls="--", label=f"intact model: {100 * intact_accuracy:.1f}% accuracy")
    ax_bar.set_xticks(x[:: max(1, len(x) // 32)], [str(c) for c in channels[:: max(1, len(x) // 32)]], fontsize=7)
    ax_bar.set_xlim(-0.6, len(x) - 0.4)
    ax_bar.set(xlabel="channel zeroed", ylabel="accuracy drop (points)",
               title=f"{layer}: test accuracy drop when one channel is zeroed")
    ax_bar.grid(axis="y", alpha=0.3)
    ax_bar.legend(loc="upper right", fontsize=8)
    low, high = ax_bar.get_ylim()
    right = ax_bar.twinx()  # the same bars read as the ablated model's accuracy
    right.set_ylim(100 * intact_accuracy - low, 100 * intact_accuracy - high)
    right.set_ylabel("accuracy with channel zeroed (%)")
    values = 100.0 * np.asarray(per_class_drop).T  # (classes, K)
    bound = max(1.0, float(np.nanmax(np.abs(values)))) if np.isfinite(values).any() else 1.0
    _heatmap(ax_cls, values, channels, class_names, "coolwarm", -bound, bound, "drop (points)", ".0f")
    ax_cls.set_title(f"{layer}: accuracy drop per class (red: the class needs the channel)", fontsize=10)
    return fig
