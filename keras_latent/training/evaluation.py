"""Evaluation: test-set predictions, scikit-learn classification report, per-class accuracy."""
from __future__ import annotations

import numpy as np

# scikit-learn (and SciPy through it) is imported in the functions that use it, after training: a training
# process does not hold it while it trains (keras_latent.quiet_start keeps Keras from loading it at start-up).

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
    from sklearn.metrics import classification_report, confusion_matrix

    predicted = probs.argmax(axis=1)
    classes = list(range(len(class_names)))
    cm = confusion_matrix(labels, predicted, labels=classes)
    per_class = per_class_accuracy(cm)
    report = classification_report(labels, predicted, labels=classes, target_names=list(class_names),
                                   digits=4, zero_division=0)
    metrics = {
        "test_accuracy": float(np.mean(predicted == labels)),
        "per_class_accuracy": per_class_dict(class_names, per_class),
        **classification_figures(labels, predicted, class_names),
        "confusion_matrix": cm.tolist(),  # (C, C) counts
        "report": report + "\n" + format_per_class_accuracy(class_names, per_class),
    }
    if reconstruction is not None and images is not None:  # in slices: no full-size temporaries
        squared = sum(float(np.sum(np.square(reconstruction[s:s + 4096] - images[s:s + 4096], dtype=np.float64)))
                      for s in range(0, len(images), 4096))
        metrics["test_reconstruction_mse"] = squared / max(np.size(images), 1)
    return metrics


def _figures(row: dict) -> dict:
    return {"precision": float(row["precision"]), "recall": float(row["recall"]), "f1": float(row["f1-score"]),
            "support": int(row["support"])}


def classification_figures(labels: np.ndarray, predicted: np.ndarray, class_names: tuple[str, ...]) -> dict:
    """scikit-learn's classification report as numbers: {"per_class": {class: {precision, recall, f1, support}},
    "averages": {"macro": ..., "weighted": ...}}; labels and predicted: class indices (N,)."""
    from sklearn.metrics import classification_report

    report = classification_report(labels, predicted, labels=list(range(len(class_names))),
                                   target_names=list(class_names), output_dict=True, zero_division=0)
    return {"per_class": {name: _figures(report[name]) for name in class_names},
            "averages": {"macro": _figures(report["macro avg"]), "weighted": _figures(report["weighted avg"])}}


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
