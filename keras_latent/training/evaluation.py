"""Evaluation: test-set predictions, scikit-learn classification report, per-class accuracy."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix


def predict(model, dataset) -> dict[str, np.ndarray]:
    """Run `model` over a batched dataset: {"classifier": (N, C) probs, "reconstruction": (N, H, W, 3)}."""
    return {name: np.asarray(value) for name, value in model.predict(dataset, verbose=0).items()}


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each class from a confusion matrix (rows = true class); NaN for absent classes."""
    totals = cm.sum(axis=1)
    return np.divide(np.diag(cm), totals, out=np.full(len(cm), np.nan), where=totals > 0)


def per_class_dict(class_names: tuple[str, ...], values: np.ndarray) -> dict:
    """{class name: value} for JSON: floats, None (null) where a value is NaN (a class with no image)."""
    return {name: (None if np.isnan(v) else float(v)) for name, v in zip(class_names, values)}


def evaluate_predictions(probs: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...],
                         reconstruction: np.ndarray | None = None, images: np.ndarray | None = None) -> dict:
    """Metrics of test predictions.

    probs: (N, C) class probabilities; labels: (N,); reconstruction and images: normalized
    (N, H, W, 3) arrays for the reconstruction MSE. Returns a JSON-ready dict plus the confusion
    matrix and the report text under "confusion_matrix" and "report".
    """
    predicted = probs.argmax(axis=1)
    classes = list(range(len(class_names)))
    cm = confusion_matrix(labels, predicted, labels=classes)
    per_class = per_class_accuracy(cm)
    report = classification_report(labels, predicted, labels=classes, target_names=list(class_names),
                                   digits=4, zero_division=0)
    metrics = {
        "test_accuracy": float(np.mean(predicted == labels)),
        "per_class_accuracy": per_class_dict(class_names, per_class),
        "confusion_matrix": cm,
        "report": report + "\n" + format_per_class_accuracy(class_names, per_class),
    }
    if reconstruction is not None and images is not None:
        metrics["test_reconstruction_mse"] = float(np.mean((reconstruction - images) ** 2))
    return metrics


def format_per_class_accuracy(class_names: tuple[str, ...], accuracy: np.ndarray) -> str:
    width = max(len(n) for n in class_names)
    lines = ["per-class accuracy", ""]
    lines += [f"{name:>{width}}  {'n/a' if np.isnan(a) else f'{a:.4f}'}" for name, a in zip(class_names, accuracy)]
    return "\n".join(lines) + "\n"
