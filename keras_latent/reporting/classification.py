"""Report section 3: the classification report as a table, the confusion matrix, best and worst classes.

Every number is read from metrics.json, where training wrote scikit-learn's precision, recall, F1 and
support per class, their averages and the confusion matrix's counts (`training.evaluation`): the report
never loads the model or the data set. A run trained before those figures were recorded shows its
per-class accuracy and the saved text report instead, with the command that adds them.
"""
from __future__ import annotations

import math

import numpy as np

from keras_latent.reporting.assets import figure, fmt, join_names, note, pct
from keras_latent.runs import layout
from keras_latent.runs.records import read_text
from keras_latent.runs.run import Run


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


def _row(name: str, figures: dict) -> dict:
    return {"name": name, "precision": fmt(figures["precision"]),
            "recall": fmt(figures["recall"] if figures["support"] else None), "f1": fmt(figures["f1"]),
            "support": figures["support"]}


def report_rows(metrics: dict) -> tuple[list, list]:
    """Per-class rows and summary rows (accuracy, macro and weighted averages) from metrics.json's figures."""
    rows = [_row(name, figures) for name, figures in metrics["per_class"].items()]
    averages = metrics["averages"]
    summary = [{"name": "accuracy", "precision": "", "recall": fmt(metrics["test_accuracy"]), "f1": "",
                "support": metrics.get("test_images", sum(r["support"] for r in rows))}]
    summary += [{**_row(f"{key} avg", averages[key]), "recall": fmt(averages[key]["recall"])}
                for key in ("macro", "weighted")]
    return rows, summary


def from_metrics(metrics: dict) -> dict:
    """The section from metrics.json's figures (runs trained from issue 21 on)."""
    rows, summary = report_rows(metrics)
    class_names = tuple(metrics["per_class"])
    sentences = [best_worst_sentence(metrics.get("per_class_accuracy") or {}, metrics["test_accuracy"])]
    counts = metrics.get("confusion_matrix") or []  # (C, C): rows true class, columns predicted
    if len(counts) == len(class_names) and all(len(row) == len(class_names) for row in counts):
        sentences.append(confusion_sentence(np.asarray(counts, dtype=np.int64), class_names))
    return {"rows": rows, "summary": summary, "saved_report": None, "sentences": [s for s in sentences if s],
            "notes": []}


def from_saved_files(run: Run) -> dict:
    """Runs from before metrics.json held precision, recall and F1: per-class accuracy from metrics.json and the
    saved text report, with the command that adds the figures (a reader never recomputes them)."""
    metrics = run.metrics or {}
    per_class = metrics.get("per_class_accuracy") or {}
    rows = [{"name": name, "precision": "", "recall": fmt(acc), "f1": "", "support": ""}
            for name, acc in per_class.items()]
    summary = [{"name": "accuracy", "precision": "", "recall": fmt(metrics.get("test_accuracy")), "f1": "",
                "support": metrics.get("test_images", "")}] if "test_accuracy" in metrics else []
    saved = read_text(run.path(layout.CLASSIFICATION_REPORT), layout.CLASSIFICATION_REPORT)
    sentence = best_worst_sentence(per_class, metrics.get("test_accuracy")) if per_class else ""
    notes = []
    if run.metrics is not None:
        notes.append(note(f"Precision, recall and F1 per class are not in this run's {layout.METRICS.name} (it was "
                          "trained before they were recorded); the per-class accuracy below is from it. Retrain "
                          "the run to add them:", layout.rebuild_command(layout.METRICS, run.path(layout.METRICS))))
    return {"rows": rows, "summary": summary, "saved_report": saved, "sentences": [s for s in [sentence] if s],
            "notes": notes}


def classification_section(run: Run) -> dict:
    """Section 3: report table, sentences and confusion matrix, all from the run's files."""
    metrics = run.metrics
    if metrics is not None and "per_class" in metrics and "averages" in metrics:
        section = from_metrics(metrics)
    else:
        section = from_saved_files(run)
    path = run.path(layout.CONFUSION_MATRIX)
    saved = figure(path, "Test confusion matrix (rows: true class, columns: predicted class)",
                   layout.CONFUSION_MATRIX) if run.has(layout.CONFUSION_MATRIX) else None
    section["confusion"] = saved
    if saved is None:
        section["notes"].append(note("No confusion_matrix.png yet: it is written when training ends"))
    return section
