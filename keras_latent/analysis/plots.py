"""Figures of the latent analysis: each function takes arrays and returns a matplotlib Figure.

Channel grids wrap into rows (6 channels: one row; 16: two rows of 8; 128: eight rows of 16),
so a figure stays readable for any trunk width. The caller saves (keras_latent.files.save_figure).
"""
from __future__ import annotations

import math

import matplotlib
import numpy as np
from matplotlib.figure import Figure

TILE_INCHES = 1.15  # side of one image tile
MODE_CAPTIONS = {"keep": "tile ch k: decoded with only channel k kept",
                 "drop": "tile ch k: decoded with only channel k zeroed"}


def grid_columns(n_tiles: int) -> int:
    """Tiles per row: all in one row up to 8, rows of 8 up to 32, then rows of 16."""
    return n_tiles if n_tiles <= 8 else 8 if n_tiles <= 32 else 16


def _gaps(h: int, w: int) -> tuple[int, int]:
    """Pixels between tiles across, and above each tile (room for its label)."""
    return max(1, round(w / 10)), max(2, round(h * 0.32))


def _montage_pixels(k: int, h: int, w: int, cols: int) -> tuple[int, int]:
    gap_x, gap_top = _gaps(h, w)
    return math.ceil(k / cols) * (h + gap_top), cols * (w + gap_x) - gap_x


def montage(tiles: np.ndarray, cols: int, fill) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Tiles (K, h, w[, 3]) laid out `cols` per row in one image, with a gap above each for its label.

    Returns the image and each tile's (x centre, top y) in its pixel coordinates. One image with
    text labels draws several times faster than one axes per tile (128 channels: ~1 s instead of ~4 s).
    """
    k, h, w = tiles.shape[:3]
    gap_x, gap_top = _gaps(h, w)
    canvas = np.full((*_montage_pixels(k, h, w, cols), *tiles.shape[3:]), fill,
                     dtype=np.float32 if tiles.ndim == 3 else tiles.dtype)
    anchors = []
    for j, tile in enumerate(tiles):
        row, col = divmod(j, cols)
        top, left = row * (h + gap_top) + gap_top, col * (w + gap_x)
        canvas[top:top + h, left:left + w] = tile
        anchors.append((left + (w - 1) / 2, top - 0.5))
    return canvas, anchors


def _show_montage(fig, rect_in: tuple[float, float, float, float], size_in: tuple[float, float], tiles, labels,
                  cols: int, **imshow):
    """Draw `tiles` as a labelled montage in an axes at `rect_in` (left, bottom, width, height inches)."""
    canvas, anchors = montage(tiles, cols, np.nan if tiles.ndim == 3 else 255)  # NaN shows as the cmap's "bad"
    left, bottom, width, height = rect_in
    ax = fig.add_axes((left / size_in[0], bottom / size_in[1], width / size_in[0], height / size_in[1]))
    image = ax.imshow(canvas, interpolation="nearest", aspect="auto", **imshow)
    for (x, y), label in zip(anchors, labels):
        ax.text(x, y - 0.08 * tiles.shape[1], label, ha="center", va="bottom", fontsize=8)
    ax.set_axis_off()
    return image


def _montage_inches(tiles: np.ndarray, cols: int) -> tuple[float, float]:
    """Width and height in inches of a montage whose tiles each show TILE_INCHES wide."""
    height, width = _montage_pixels(len(tiles), tiles.shape[1], tiles.shape[2], cols)
    return width * TILE_INCHES / tiles.shape[2], height * TILE_INCHES / tiles.shape[1]


def _tile_figure(header: np.ndarray, header_labels, tiles: np.ndarray, labels, title: str, colorbar: str = "",
                 **imshow) -> Figure:
    """A header row of RGB tiles (original, ...) over the channel tiles wrapped into rows."""
    cols = max(grid_columns(len(tiles)), len(header))
    head_w, head_h = _montage_inches(header, len(header))
    body_w, body_h = _montage_inches(tiles, cols)
    margin, title_h, bar_w = 0.15, 0.1 + 0.2 * (title.count("\n") + 1), (0.9 if colorbar else 0.0)
    size = (max(head_w, body_w) + 2 * margin + bar_w, title_h + head_h + body_h + 2 * margin)
    fig = Figure(figsize=size)
    _show_montage(fig, (margin, margin + body_h, head_w, head_h), size, header, header_labels, len(header))
    image = _show_montage(fig, (margin, margin, body_w, body_h), size, tiles, labels, cols, **imshow)
    if colorbar:
        bar = fig.add_axes(((margin + body_w + 0.25) / size[0], (margin + 0.1 * body_h) / size[1], 0.12 / size[0],
                            0.8 * body_h / size[1]))
        fig.colorbar(image, cax=bar, label=colorbar)
    fig.suptitle(title, fontsize=10, y=1 - 0.1 / size[1], va="top")
    return fig


def plot_channel_grid(original: np.ndarray, full: np.ndarray, tiles: np.ndarray, channels, title: str,
                      mode: str = "keep") -> Figure:
    """Original, full reconstruction, then one decoded tile per channel titled `ch k`.

    original, full: uint8 (H, W, 3); tiles: uint8 (K, H, W, 3) for `channels` (K,).
    """
    return _tile_figure(np.stack([original, full]), ["original", "all channels"], np.asarray(tiles),
                        [f"ch {c}" for c in channels], f"{title}\n{MODE_CAPTIONS[mode]}")


def plot_activation_maps(original: np.ndarray, maps: np.ndarray, channels, title: str) -> Figure:
    """The raw feature map of each channel, on one shared colour scale so strong and dead channels show.

    original: uint8 (H, W, 3); maps: float (h, w, K) activations for `channels` (K,).
    """
    maps = np.moveaxis(np.asarray(maps, np.float32), -1, 0)  # (K, h, w)
    top = float(maps.max()) if maps.size and maps.max() > 0 else 1.0
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")  # the gaps between maps
    return _tile_figure(original[None], ["original"], maps, [f"ch {c}" for c in channels], title,
                        colorbar="activation", cmap=cmap, vmin=0.0, vmax=top)


def _channel_ticks(channels) -> tuple[range, list[str]]:
    """Positions and labels of the channel ticks: every channel up to 63, else thinned to about 32."""
    step = max(1, len(channels) // 32)
    return range(0, len(channels), step), [str(c) for c in channels[::step]]


def _symmetric_bound(values: np.ndarray) -> float:
    """Colour bound for a diverging map centred on 0: the largest magnitude, at least 1 (1 when all NaN)."""
    return max(1.0, float(np.nanmax(np.abs(values)))) if np.isfinite(values).any() else 1.0


def _heatmap(ax, values: np.ndarray, channels, class_names, cmap: str, vmin: float, vmax: float, label: str,
             fmt: str):
    """classes x channels image with labelled ticks and, when small, the value in each cell."""
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.set_xticks(*_channel_ticks(channels), fontsize=7)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=8)
    ax.set_xlabel("channel")
    if len(channels) <= 16:
        for (r, c), v in np.ndenumerate(values):
            if np.isfinite(v):
                red, green, blue, _ = image.cmap(image.norm(v))
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
                ax.text(c, r, format(v, fmt), ha="center", va="center", fontsize=6, color="w" if dark else "k")
    ax.figure.colorbar(image, ax=ax, label=label)


def _figure_width(n_channels: int) -> float:
    return min(22.0, max(7.0, 0.45 * n_channels + 3.0))


def plot_channel_class_heatmap(mean_activation: np.ndarray, class_mean: np.ndarray, channels,
                               class_names, layer: str) -> Figure:
    """Mean activation of each channel on each class, raw and relative to the channel's overall mean.

    mean_activation: (K,); class_mean: (K, classes), both for `channels` (K,).
    """
    channels = np.asarray(channels)
    fig = Figure(figsize=(_figure_width(len(channels)), 0.7 * len(class_names) + 2.5), layout="constrained")
    ax_raw, ax_rel = fig.subplots(2, 1)
    values = class_mean.T  # (classes, K)
    top = np.nanmax(values) if np.isfinite(values).any() else 1.0
    _heatmap(ax_raw, values, channels, class_names, "viridis", 0.0, top, "mean activation", ".2f")
    ax_raw.set_title(f"{layer}: mean activation per class (test split)", fontsize=10)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = 100.0 * (values / mean_activation[None, :] - 1.0)
    relative[:, mean_activation <= 0] = np.nan
    bound = _symmetric_bound(relative)
    _heatmap(ax_rel, relative, channels, class_names, "coolwarm", -bound, bound, "% vs channel mean", ".0f")
    ax_rel.set_title(f"{layer}: class preference (% above or below the channel's mean; blank: dead channel)",
                     fontsize=10)
    return fig


def plot_ablation(channels, accuracy_drop: np.ndarray, intact_accuracy: float, per_class_drop: np.ndarray,
                  class_names, layer: str) -> Figure:
    """Accuracy drop when each channel is zeroed (bars, intact accuracy marked), and the drop per class.

    accuracy_drop: (K,) fractions; per_class_drop: (K, classes); both for `channels` (K,).
    """
    channels = np.asarray(channels)
    x = np.arange(len(channels))
    fig = Figure(figsize=(_figure_width(len(channels)), 0.55 * len(class_names) + 5.0), layout="constrained")
    ax_bar, ax_cls = fig.subplots(2, 1, height_ratios=(1.0, 0.12 * len(class_names) + 0.3))
    drop_pp = 100.0 * np.asarray(accuracy_drop)
    ax_bar.bar(x, drop_pp, color=np.where(drop_pp >= 0, "C3", "C0"))
    ax_bar.axhline(0.0, color="k", lw=1.0, ls="--", label=f"intact model: {100 * intact_accuracy:.1f}% accuracy")
    ax_bar.set_xticks(*_channel_ticks(channels), fontsize=7)
    ax_bar.set_xlim(-0.6, len(x) - 0.4)
    ax_bar.set(xlabel="channel zeroed", ylabel="accuracy drop (points)",
               title=f"{layer}: test accuracy drop when one channel is zeroed")
    ax_bar.grid(axis="y", alpha=0.3)
    low, high = min(0.0, drop_pp.min(initial=0.0)), max(0.0, drop_pp.max(initial=0.0))
    span = max(high - low, 0.5)
    low, high = low - 0.06 * span, high + 0.2 * span  # the intact line clear of the frame, room for the legend
    ax_bar.set_ylim(low, high)
    ax_bar.legend(loc="upper right", fontsize=8)
    right = ax_bar.twinx()  # the same bars read as the ablated model's accuracy
    right.set_ylim(100 * intact_accuracy - low, 100 * intact_accuracy - high)
    right.set_ylabel("accuracy with channel zeroed (%)")
    values = 100.0 * np.asarray(per_class_drop).T  # (classes, K)
    bound = _symmetric_bound(values)
    _heatmap(ax_cls, values, channels, class_names, "coolwarm", -bound, bound, "drop (points)", ".0f")
    ax_cls.set_title(f"{layer}: accuracy drop per class (red: the class needs the channel)", fontsize=10)
    return fig
