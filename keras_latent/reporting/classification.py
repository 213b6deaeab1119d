"""Report section 3: the classification report as a table, the confusion matrix, best and worst classes.

The table is recomputed with scikit-learn from the saved model's predictions on the run's test
split (rebuilt from config.json), so it has every number as a number, and is checked against
metrics.json. Where the data set cannot be loaded any more, the saved text report is shown instead.
"""
from __future__ import annotations

import math
import os

import numpy as np

from keras_latent.config import TrainConfig
from keras_latent.errors import UsageError
from keras_latent.reporting.assets import figure, fmt, join_names, note, pct
from keras_latent.runs import layout
from keras_latent.runs.records import read_text

AGREEMENT_TOLERANCE = 1e-6  # recomputed accuracy vs metrics.json (both are exact count ratios)


def predict_test_split(model, config: TrainConfig) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Class probabilities (N, C) and true class indices (N,) of the run's test split, and the class names."""
    from keras_latent.data import load_splits
    from keras_latent.data.pipeline import make_dataset
    from keras_latent.training import evaluation

    splits, _ = load_splits(config)
    dataset = make_dataset(splits.x_test, splits.y_test, config.batch_size, training=False, reconstruction_outputs=())
    probs = evaluation.predict(model, dataset)["classifier"]  # (N, C)
    return probs, splits.y_test, splits.class_names


def best_worst_sentence(per_class: dict[str, float | None], accuracy: float | None) -> str:
    """One sentence naming the best and worst recognised classes (all of them on a tie) from the numbers."""
    known = {k: v for k, v in per_class.items() if v is not None and not math.isnan(v)}
    if not known:
        return ""
    high, low = max(known.values()), min(known.values())
    if high == low:
        text = f"Every class is recognised equally often ({pct(high)} of its test images)"
    else:
        best = [k for k, v in known.items() if v == high]
        worst = [k for k, v in known.items() if v == low]
        text = (f"The model recognises {join_names(best)} best ({pct(high)} of {'its' if len(best) == 1 else 'their'} "
                f"test images right) and {join_names(worst)} worst ({pct(low)})")
    if accuracy is not None:
        text += f"; overall test accuracy is {pct(accuracy)}, against {pct(1 / len(per_class))} for chance"
    return text + "."


def confusion_sentence(cm: np.ndarray, class_names: tuple[str, ...]) -> str:
    """The most frequent mistake, from a confusion matrix (rows true, columns predicted)."""
    mistakes = cm * (1 - np.eye(len(cm), dtype=cm.dtype))
    if mistakes.max() == 0:
        return "The model makes no mistakes on the test split."
    true, predicted = np.unravel_index(np.argmax(mistakes), mistakes.shape)
    return (f"Its most frequent mistake is taking {class_names[true]} for {class_names[predicted]} "
            f"({mistakes[true, predicted]} of {cm[true].sum()} {class_names[true]} test images).")


def report_rows(predicted: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...]) -> tuple[list, list]:
    """Per-class rows and summary rows (accuracy, macro and weighted averages) of sklearn's report."""
    from sklearn.metrics import classification_report

    report = classification_report(labels, predicted, labels=list(range(len(class_names))),
                                   target_names=list(class_names), output_dict=True, zero_division=0)
    rows = [{"name": name, "precision": fmt(r["precision"]), "recall": fmt(r["recall"] if r["support"] else None),
             "f1": fmt(r["f1-score"]), "support": int(r["support"])}
            for name, r in ((n, report[n]) for n in class_names)]
    accuracy = report.get("accuracy", report.get("micro avg", {}).get("f1-score"))
    summary = [{"name": "accuracy", "precision": "", "recall": fmt(accuracy), "f1": "", "support": len(labels)}]
    summary += [{"name": key, "precision": fmt(report[key]["precision"]), "recall": fmt(report[key]["recall"]),
                 "f1": fmt(report[key]["f1-score"]), "support": int(report[key]["support"])}
                for key in ("macro avg", "weighted avg")]
    return rows, summary


def agreement_notes(per_class: dict, accuracy: float, metrics: dict | None) -> list[dict]:
    """A note when the recomputed figures differ from metrics.json (model or data changed since training)."""
    if not metrics or metrics.get("test_accuracy") is None:
        return []
    saved = dict(metrics.get("per_class_accuracy") or {}, __all__=metrics["test_accuracy"])
    fresh = dict(per_class, __all__=accuracy)
    differ = [k for k in fresh if saved.get(k) is not None and fresh[k] is not None
              and abs(saved[k] - fresh[k]) > AGREEMENT_TOLERANCE]
    if not differ:
        return []
    return [note(f"The recomputed figures differ from metrics.json (test accuracy {fmt(accuracy)} now, "
                 f"{fmt(metrics['test_accuracy'])} saved): model.keras or the data set changed after training")]


def recomputed(model, config: TrainConfig, metrics: dict | None) -> dict:
    """The section from fresh test predictions, with the same metrics code as training's metrics.json."""
    from keras_latent.training.evaluation import evaluate_predictions

    probs, labels, class_names = predict_test_split(model, config)
    rows, summary = report_rows(probs.argmax(axis=1), labels, class_names)
    result = evaluate_predictions(probs, labels, class_names)
    cm, per_class, accuracy = result["confusion_matrix"], result["per_class_accuracy"], result["test_accuracy"]
    return {"rows": rows, "summary": summary, "saved_report": None,
            "sentences": [best_worst_sentence(per_class, accuracy), confusion_sentence(cm, class_names)],
            "notes": agreement_notes(per_class, accuracy, metrics)}


def from_saved_files(run_dir: str, metrics: dict | None, reason: str) -> dict:
    """Fallback without predictions: per-class accuracy from metrics.json and the saved text report."""
    metrics = metrics or {}
    per_class = metrics.get("per_class_accuracy") or {}
    rows = [{"name": name, "precision": "", "recall": fmt(acc), "f1": "", "support": ""}
            for name, acc in per_class.items()]
    summary = [{"name": "accuracy", "precision": "", "recall": fmt(metrics.get("test_accuracy")), "f1": "",
                "support": metrics.get("test_images", "")}] if "test_accuracy" in metrics else []
    saved = read_text(layout.CLASSIFICATION_REPORT.path(run_dir), layout.CLASSIFICATION_REPORT)
    sentence = best_worst_sentence(per_class, metrics.get("test_accuracy")) if per_class else ""
    return {"rows": rows, "summary": summary, "saved_report": saved, "sentences": [s for s in [sentence] if s],
            "notes": [note(f"Precision, recall and F1 per class were not recomputed ({reason}); "
                           "the per-class accuracy below is from metrics.json")]}


def classification_section(run_dir: str, model, config: TrainConfig, metrics: dict | None) -> dict:
    """Section 3: report table (recomputed when model and data are at hand), sentences, confusion matrix."""
    if model is None:
        section = from_saved_files(run_dir, metrics, "no model.keras")
    else:
        try:
            section = recomputed(model, config, metrics)
        except UsageError as err:  # the run's data set cannot be loaded here
            section = from_saved_files(run_dir, metrics, f"the test images could not be loaded: {err}")
    path = layout.CONFUSION_MATRIX.path(run_dir)
    section["confusion"] = figure(path, "Test confusion matrix (rows: true class, columns: predicted class)",
                                  layout.CONFUSION_MATRIX) \
        if os.path.isfile(path) else None
    if section["confusion"] is None:
        section["notes"].append(note("No confusion_matrix.png yet: it is written when training ends"))
    return section
