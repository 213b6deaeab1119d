"""Figures of what excites a channel and where the classifier looks: feature-visualization grids, Grad-CAM
and saliency overlays. Each function takes arrays and returns a matplotlib Figure (built without pyplot);
the caller saves it (keras_latent.files.save_figure)."""
from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from keras_latent.analysis.plots import TILE_INCHES, grid_columns

OVERLAY_ALPHA = 0.5  # heatmap opacity over the image


def plot_feature_grid(images: np.ndarray, channels, reached: np.ndarray, best_test: np.ndarray, layer: str) -> Figure:
    """One optimized image per channel, titled `ch k` over `reached / best test` activations.

    images: uint8 (K, S, S, 3); reached: (K,) the channel's mean activation on its image;
    best_test: (K,) the highest mean activation over the test images.
    """
    k = len(images)
    cols = grid_columns(k)
    rows = math.ceil(k / cols)
    fig = Figure(figsize=(max(4.0, cols * TILE_INCHES), rows * (TILE_INCHES + 0.45) + 0.75), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, image, channel, value, best in zip(axes, images, channels, reached, best_test):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(f"ch {channel}\n{value:.2f} / {best:.2f}", fontsize=8)
    fig.suptitle(f"{layer}: the image that excites each channel most (feature visualization)\n"
                 "under each channel: mean activation on its image / highest over the test images", fontsize=10)
    return fig


def _normalized(heatmap: np.ndarray) -> np.ndarray:
    """A map scaled to [0, 1] by its own maximum (an all-zero map stays zero)."""
    top = float(np.max(heatmap)) if heatmap.size else 0.0
    return np.asarray(heatmap, np.float32) / top if top > 0 else np.zeros_like(heatmap, np.float32)


def _attribution_figure(original: np.ndarray, panels: list[list[tuple[np.ndarray, bool]]], row_labels,
                        column_labels, title: str, cmap: str) -> Figure:
    """Rows of [original, panel, ...]; a panel (map (S, S), overlay) is drawn over the image or alone."""
    rows, cols = len(panels), 1 + len(column_labels)
    fig = Figure(figsize=(cols * 1.6 + 0.6, rows * 1.75 + 0.8), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for r, row in enumerate(panels):
        axes[r, 0].imshow(original, interpolation="nearest")
        axes[r, 0].set_ylabel(row_labels[r], fontsize=8)
        for c, (heatmap, overlay) in enumerate(row, start=1):
            if overlay:
                axes[r, c].imshow(original, interpolation="nearest")
            axes[r, c].imshow(_normalized(heatmap), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="bilinear",
                              alpha=OVERLAY_ALPHA if overlay else 1.0)
        for c, label in enumerate(["image", *column_labels]):
            if r == 0:
                axes[r, c].set_title(label, fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    return fig


def plot_grad_cam(original: np.ndarray, maps: np.ndarray, layers, row_labels, title: str) -> Figure:
    """Grad-CAM over the image: one row per class (predicted, true), one column per trunk layer.

    original: uint8 (S, S, 3); maps: (rows, layers, S, S) upsampled to the image, each drawn scaled
    to its own maximum (red: where the class's score rises most with the layer's activations).
    """
    panels = [[(m, True) for m in row] for row in np.asarray(maps)]
    return _attribution_figure(original, panels, row_labels, [f"Grad-CAM {layer}" for layer in layers],
                               f"{title}\neach map scaled to its own maximum", "jet")


def plot_saliency(original: np.ndarray, saliency: np.ndarray, row_labels, title: str) -> Figure:
    """SmoothGrad saliency: one row per class (predicted, true): the map alone, then over the image.

    original: uint8 (S, S, 3); saliency: (rows, S, S), each drawn scaled to its own maximum.
    """
    panels = [[(s, False), (s, True)] for s in np.asarray(saliency)]
    return _attribution_figure(original, panels, row_labels, ["SmoothGrad", "over the image"],
                               f"{title}\neach map scaled to its own maximum", "inferno")
