"""A study's statistics: per variant the mean, sd and 95% interval of test accuracy; per pair of variants the
paired difference over the seeds both have, its 95% interval and a paired t-test p-value; the same per class;
and a conclusion sentence per pair. Pure functions of the runs' figures (`keras_latent.stats` does the maths).
"""
from __future__ import annotations

import math

import numpy as np

from keras_latent.stats import CONFIDENCE, mean_interval, paired_difference, significant

LEVEL = round(1 - CONFIDENCE, 2)  # the test level, 0.05


def _by_seed(rows: list[dict], variant: str, key: str, class_name: str | None = None) -> dict[int, float]:
    """{seed: figure} of one variant's runs; `class_name` picks a per-class accuracy."""
    found = {}
    for row in rows:
        if row["variant"] != variant:
            continue
        value = row["per_class_accuracy"].get(class_name) if class_name is not None else row.get(key)
        if value is not None:
            found[int(row["seed"])] = float(value)
    return found


def variant_summary(rows: list[dict], name: str, class_names: list[str]) -> dict:
    """Mean, sd and 95% interval of one variant's test accuracy, reconstruction MSE, per-class accuracy, and
    its training seconds (mean per run and total)."""
    accuracy = _by_seed(rows, name, "test_accuracy")
    mse = list(_by_seed(rows, name, "test_reconstruction_mse").values())
    seconds = list(_by_seed(rows, name, "seconds").values())
    return {"seeds": sorted(accuracy), "test_accuracy": mean_interval(list(accuracy.values())),
            "test_reconstruction_mse": mean_interval(mse) if mse else None,
            "per_class_accuracy": {c: mean_interval(list(_by_seed(rows, name, "", c).values())) for c in class_names},
            "seconds": {"mean": float(np.mean(seconds)) if seconds else None, "total": float(np.sum(seconds))}}


def _paired(rows: list[dict], variant: str, baseline: str, key: str, class_name: str | None = None) -> tuple:
    a, b = _by_seed(rows, variant, key, class_name), _by_seed(rows, baseline, key, class_name)
    seeds = sorted(set(a) & set(b))
    return seeds, paired_difference([a[s] for s in seeds], [b[s] for s in seeds])


def _adjusted(p_values: list[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjusted p-values (scipy.stats.false_discovery_control) of the defined ones."""
    from scipy import stats

    defined = [i for i, p in enumerate(p_values) if p is not None and math.isfinite(p)]
    adjusted = [None] * len(p_values)
    if defined:
        for i, value in zip(defined, stats.false_discovery_control([p_values[i] for i in defined])):
            adjusted[i] = float(value)
    return adjusted


def points(value: float) -> str:
    """An accuracy difference in percentage points, signed: +1.1."""
    return f"{100 * value:+.1f}"


def format_p(p_value: float) -> str:
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.2g}" if p_value < 0.1 else f"p = {p_value:.2f}"


def conclusion(variant: str, baseline: str, difference: dict) -> str:
    """One sentence in the study's terms, e.g. "two-output vs classifier-only: +1.1 points (95% CI -0.9 to +3.1;
    paired t-test p = 0.21; 5 seeds): not significant at the 0.05 level."."""
    n = difference["n"]
    head = f"{variant} vs {baseline}"
    if n == 0:
        return f"{head}: no seed has finished runs of both, nothing to compare yet."
    if difference["p_value"] is None:
        return (f"{head}: {points(difference['difference'])} points (1 seed: no interval or test; "
                "run 2 or more seeds).")
    verdict = (f"significant at the {LEVEL:g} level ({variant if difference['difference'] > 0 else baseline} "
               f"is better)" if significant(difference["p_value"]) else f"not significant at the {LEVEL:g} level")
    return (f"{head}: {points(difference['difference'])} points ({CONFIDENCE:.0%} CI {points(difference['ci_low'])} "
            f"to {points(difference['ci_high'])}; paired t-test {format_p(difference['p_value'])}; {n} seeds): "
            f"{verdict}.")


def comparison(rows: list[dict], variant: str, baseline: str, class_names: list[str]) -> dict:
    """`variant` minus `baseline` over the seeds both have: test accuracy, reconstruction MSE (when both have
    it) and each class's accuracy, with Benjamini-Hochberg adjusted per-class p-values (10 classes are 10 tests)."""
    seeds, accuracy = _paired(rows, variant, baseline, "test_accuracy")
    _, mse = _paired(rows, variant, baseline, "test_reconstruction_mse")
    per_class = {c: _paired(rows, variant, baseline, "", c)[1] for c in class_names}
    for c, adjusted in zip(class_names, _adjusted([per_class[c]["p_value"] for c in class_names])):
        per_class[c]["p_value_bh"] = adjusted
    return {"variant": variant, "baseline": baseline, "seeds": seeds, "test_accuracy": accuracy,
            "significant": significant(accuracy["p_value"]),
            "test_reconstruction_mse": mse if mse["n"] else None, "per_class_accuracy": per_class,
            "conclusion": conclusion(variant, baseline, accuracy)}


def summarize(rows: list[dict], variants: list[str], class_names: list[str]) -> dict:
    """summary.json's figures from study.csv's rows (dicts with variant, seed, test_accuracy,
    test_reconstruction_mse, seconds and per_class_accuracy {class: accuracy}).

    Every later variant is compared with every earlier one (`variant` minus `baseline`), so the first variant
    is everyone's baseline.
    """
    pairs = [(variants[j], variants[i]) for i in range(len(variants)) for j in range(i + 1, len(variants))]
    comparisons = [comparison(rows, variant, baseline, class_names) for variant, baseline in pairs]
    return {"confidence": CONFIDENCE, "test": "two-sided paired t-test over seeds (scipy.stats.ttest_rel)",
            "interval": f"{CONFIDENCE:.0%} confidence interval from Student's t distribution",
            "variants": {name: variant_summary(rows, name, class_names) for name in variants},
            "comparisons": comparisons, "conclusions": [c["conclusion"] for c in comparisons]}


def epoch_bands(histories: list[list[float]]) -> dict[str, np.ndarray]:
    """Mean and 95% band per epoch of several runs' test accuracy curves (each (E,), cut to the shortest):
    {"epochs", "mean", "low", "high"} arrays (E,); the band is the mean itself for one run."""
    length = min(len(h) for h in histories)
    figures = [mean_interval([h[e] for h in histories]) for e in range(length)]
    mean = np.array([f["mean"] for f in figures])
    low = np.array([f["mean"] if f["ci_low"] is None else f["ci_low"] for f in figures])
    high = np.array([f["mean"] if f["ci_high"] is None else f["ci_high"] for f in figures])
    return {"epochs": np.arange(1, length + 1), "mean": mean, "low": low, "high": high}
