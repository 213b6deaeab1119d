"""Training figures: each function takes arrays and returns a matplotlib Figure; the caller saves it."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def plot_curves(history: dict[str, list[float]]) -> Figure:
    """Loss and classifier accuracy against epoch, train and test.

    history: Keras History-style lists keyed `loss`, `val_loss`, `classifier_accuracy`, ...
    (also `classifier_loss` and `reconstruction_loss` when present).
    """
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig = Figure(figsize=(11, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    for key, style in [("loss", "-"), ("classifier_loss", "--"), ("reconstruction_loss", ":")]:
        if key in history:
            ax_loss.plot(epochs, history[key], "C0" + style, label=f"train {key}")
            if f"val_{key}" in history:
                ax_loss.plot(epochs, history[f"val_{key}"], "C1" + style, label=f"test {key}")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_loss.legend(fontsize=8)
    ax_acc.plot(epochs, history["classifier_accuracy"], "C0-", label="train")
    if "val_classifier_accuracy" in history:
        ax_acc.plot(epochs, history["val_classifier_accuracy"], "C1-", label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Classifier accuracy")
    ax_acc.legend(fontsize=8)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def plot_confusion_matrix(cm: np.ndarray, class_names: tuple[str, ...]) -> Figure:
    """Confusion matrix (rows true, columns predicted) with counts in each cell, as scikit-learn's
    `ConfusionMatrixDisplay` draws it (Blues, a colour bar, labels at 45 degrees), without importing it."""
    size = max(5.0, 0.6 * len(class_names))
    fig = Figure(figsize=(size + 1, size))
    ax = fig.subplots()
    image = ax.imshow(cm, interpolation="nearest", cmap="Blues")
    fig.colorbar(image, ax=ax)
    light, dark = image.cmap(0.0), image.cmap(1.0)
    middle = (cm.max() + cm.min()) / 2.0
    for (row, column), count in np.ndenumerate(cm):
        ax.text(column, row, f"{count:d}", ha="center", va="center", color=light if count > middle else dark)
    ticks = np.arange(len(class_names))
    ax.set(xticks=ticks, yticks=ticks, xticklabels=list(class_names), yticklabels=list(class_names),
           xlabel="Predicted label", ylabel="True label")
    for label in ax.get_xticklabels():
        label.set(rotation=45, ha="right", rotation_mode="anchor")
    ax.set_ylim(len(class_names) - 0.5, -0.5)
    ax.set_title("Test confusion matrix")
    fig.tight_layout()
    return fig


def plot_reconstructions(originals: np.ndarray, reconstructions: np.ndarray, title: str = "") -> Figure:
    """Originals over reconstructions: two rows of uint8 images (N, H, W, 3)."""
    n = len(originals)
    fig = Figure(figsize=(1.3 * n, 3.0))
    axes = fig.subplots(2, n, squeeze=False)
    for i in range(n):
        for row, images in enumerate((originals, reconstructions)):
            axes[row, i].imshow(images[i], interpolation="nearest")
            axes[row, i].axis("off")
    axes[0, 0].set_title("original", fontsize=8, loc="left")
    axes[1, 0].set_title("reconstruction", fontsize=8, loc="left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
