"""Evaluation: test-set predictions, the confusion matrix, the classification report, per-class accuracy.

The report's figures are the confusion matrix's (precision, recall, F1 and support per class, macro and
support-weighted averages), laid out as scikit-learn's `classification_report(digits=4, zero_division=0)`
(tested equal to it). They are computed here, not by scikit-learn: importing `sklearn.metrics` (with SciPy)
took 0.8 s and 70 MB of a training run's peak memory for these few sums (docs/performance.md).
"""
from __future__ import annotations

import numpy as np

CHUNK = 512  # images per slice of the reconstruction MSE: its float64 temporaries stay ~10 MB at 32x32
KEPT_OUTPUTS = ("classifier", "reconstruction")  # what evaluation reads; layer reconstructions are not kept


def _as_dict(outputs) -> dict:
    return outputs if isinstance(outputs, dict) else {"classifier": outputs}


def predict(model, dataset) -> dict[str, np.ndarray]:
    """Run `model` over a batched dataset (of inputs, or of (inputs, targets)): {"classifier": (N, C) probs,
    "reconstruction": (N, H, W, 3)} (the latter only with a decoder).

    Batch by batch, keeping only KEPT_OUTPUTS, written into arrays sized once from the dataset's cardinality:
    on a large test split no list of batches beside the result and no copy of the layer decoders' images."""
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is not None and strategy.num_replicas_in_sync > 1:  # Keras splits the batches over the replicas
        return {name: np.asarray(value) for name, value in _as_dict(model.predict(dataset, verbose=0)).items()
                if name in KEPT_OUTPUTS}
    steps = int(dataset.cardinality())  # batches; negative when unknown
    kept, at = {}, 0
    for batch in dataset:
        outputs = model.predict_on_batch(batch[0] if isinstance(batch, tuple) else batch)
        outputs = _as_dict(outputs)
        n = 0
        for name in KEPT_OUTPUTS:
            if name not in outputs:
                continue
            value = np.asarray(outputs[name])
            n = len(value)
            if name not in kept:
                kept[name] = np.empty((n * max(steps, 1), *value.shape[1:]), value.dtype)
            if at + n > len(kept[name]):  # unknown cardinality: grow
                kept[name] = np.concatenate([kept[name][:at], np.empty_like(value)])
            kept[name][at:at + n] = value
        at += n
    return {name: value[:at] for name, value in kept.items()}


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
    (N, H, W, 3) arrays for the reconstruction MSE. Returns metrics.json's figures, JSON-ready (accuracy,
    per-class accuracy, precision/recall/F1/support per class and their averages, the confusion matrix's
    counts: rows true class, columns predicted), plus the report text under "report".
    """
    predicted = probs.argmax(axis=1)
    accuracy = float(np.mean(predicted == labels))
    cm = confusion_matrix(labels, predicted, len(class_names))
    per_class = per_class_accuracy(cm)
    figures = classification_figures(cm, class_names)
    metrics = {
        "test_accuracy": accuracy,
        "per_class_accuracy": per_class_dict(class_names, per_class),
        **figures,
        "confusion_matrix": cm.tolist(),  # (C, C) counts
        "report": format_report(figures, accuracy, class_names) + "\n"
                  + format_per_class_accuracy(class_names, per_class),
    }
    if reconstruction is not None and images is not None:  # in slices: no full-size temporaries
        squared = sum(float(np.sum(np.square(reconstruction[s:s + CHUNK] - images[s:s + CHUNK], dtype=np.float64)))
                      for s in range(0, len(images), CHUNK))
        metrics["test_reconstruction_mse"] = squared / max(np.size(images), 1)
    return metrics


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts: rows the true class, columns the predicted one; labels and predicted: (N,) class indices."""
    labels, predicted = np.asarray(labels, np.int64), np.asarray(predicted, np.int64)
    return np.bincount(labels * num_classes + predicted, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """top / bottom, 0 where bottom is 0 (scikit-learn's zero_division=0)."""
    return np.divide(top, bottom, out=np.zeros(len(top)), where=bottom > 0)


def classification_figures(cm: np.ndarray, class_names: tuple[str, ...]) -> dict:
    """The classification report as numbers, from a (C, C) confusion matrix (rows true class): {"per_class":
    {class: {precision, recall, f1, support}}, "averages": {"macro": ..., "weighted": ...}}. A class never
    predicted has precision 0, one absent recall 0, and F1 0 where both are 0; the weighted average weighs by
    support (all 0 without any image)."""
    hits, support, predicted = np.diag(cm).astype(np.float64), cm.sum(axis=1), cm.sum(axis=0)
    precision, recall = _ratio(hits, predicted), _ratio(hits, support)
    f1 = _ratio(2 * hits, (support + predicted).astype(np.float64))  # 2PR / (P + R)
    columns = {"precision": precision, "recall": recall, "f1": f1}
    total = int(support.sum())
    weights = support / total if total else np.zeros(len(support))

    def row(values: dict, count: int) -> dict:
        return {**{name: float(value) for name, value in values.items()}, "support": int(count)}

    return {"per_class": {name: row({k: v[i] for k, v in columns.items()}, support[i])
                          for i, name in enumerate(class_names)},
            "averages": {"macro": row({k: v.mean() for k, v in columns.items()}, total),
                         "weighted": row({k: float(np.sum(v * weights)) for k, v in columns.items()}, total)}}


def format_report(figures: dict, accuracy: float, class_names: tuple[str, ...], digits: int = 4) -> str:
    """`classification_figures` as text, in scikit-learn's `classification_report` layout."""
    width = max(len("weighted avg"), *(len(name) for name in class_names))
    number = f" {{:>9.{digits}f}}"

    def line(name: str, row: dict) -> str:
        return f"{name:>{width}s} " + "".join(number.format(row[k]) for k in ("precision", "recall", "f1")) \
            + f" {row['support']:>9}\n"

    text = f"{'':>{width}s} " + "".join(f" {h:>9}" for h in ("precision", "recall", "f1-score", "support")) + "\n\n"
    text += "".join(line(name, figures["per_class"][name]) for name in class_names) + "\n"
    total = figures["averages"]["macro"]["support"]
    text += f"{'accuracy':>{width}s} " + f" {'':>9}" * 2 + number.format(accuracy) + f" {total:>9}\n"
    text += line("macro avg", figures["averages"]["macro"]) + line("weighted avg", figures["averages"]["weighted"])
    return text


def format_per_class_accuracy(class_names: tuple[str, ...], accuracy: np.ndarray) -> str:
    width = max(len(n) for n in class_names)
    lines = ["per-class accuracy", ""]
    lines += [f"{name:>{width}}  {'n/a' if np.isnan(a) else f'{a:.4f}'}" for name, a in zip(class_names, accuracy)]
    return "\n".join(lines) + "\n"


def _layer_shape(layer) -> str:
    try:
        outputs = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]  # a trunk's: a list
        return ", ".join(str(tuple(output.shape)).replace("None", "B") for output in outputs)
    except (AttributeError, ValueError):
        return "?"


def model_summary(model) -> dict:
    """model_summary.json: every layer (sub-models expanded, `depth` levels down) with its output shape (B: the
    batch) and parameter count, and the model's trainable and non-trainable parameter counts."""
    import keras

    layers = []

    def walk(container, depth: int) -> None:
        for layer in container.layers:
            if depth and isinstance(layer, keras.layers.InputLayer):
                continue  # a sub-model's own input repeats its parent's tensor
            layers.append({"name": layer.name, "type": type(layer).__name__, "shape": _layer_shape(layer),
                           "params": int(layer.count_params()), "depth": depth})
            if isinstance(layer, keras.Model):
                walk(layer, depth + 1)

    walk(model, 0)
    count = lambda weights: int(sum(np.prod(w.shape) for w in weights))  # noqa: E731
    return {"name": model.name, "layers": layers, "trainable_params": count(model.trainable_weights),
            "non_trainable_params": count(model.non_trainable_weights)}
