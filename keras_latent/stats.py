"""Error bars over repeated runs: mean with a t-distribution confidence interval, and paired differences with a
paired t-test (scipy.stats). Shared by the loss-weight search (repeats of a trial) and the study (seeds).

Both return plain dicts ready for JSON: a figure that needs two or more values (sd, se, interval, p-value) is
None when there is only one. scipy is imported inside the functions, so importing this module stays light (numpy only).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95  # of every interval; also the test level: p < 1 - CONFIDENCE is "significant"


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> dict:
    """{"n", "mean", "sd", "se", "ci_low", "ci_high"} of `values` (N,): sample sd (ddof 1), standard error
    sd / sqrt(N), and the `confidence` interval of the mean from Student's t with N - 1 degrees of freedom.
    NaN and None values are left out; with no value every figure is None."""
    from scipy import stats

    values = _finite(values)
    n = len(values)
    result = {"n": n, "mean": sum(values) / n if n else None, "sd": None, "se": None, "ci_low": None,
              "ci_high": None}
    if n >= 2:
        sd = float(np.std(values, ddof=1))
        se = sd / math.sqrt(n)
        low, high = stats.t.interval(confidence, n - 1, loc=result["mean"], scale=se) if se > 0 else (
            result["mean"], result["mean"])
        result.update(sd=sd, se=se, ci_low=float(low), ci_high=float(high))
    return result


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> dict:
    """The difference a - b of paired values (N,) (a[i] and b[i] share seed i): {"n", "difference" (mean),
    "sd", "se", "ci_low", "ci_high", "p_value"}, the interval from Student's t and the p-value of the two-sided
    paired t-test (scipy.stats.ttest_rel). Pairs with a NaN or None on either side are left out.

    When every difference is the same number, the t-test is undefined; then p is 1 for a difference of 0 and
    0 otherwise, and the interval is that number.
    """
    from scipy import stats

    pairs = [(float(x), float(y)) for x, y in zip(a, b)
             if x is not None and y is not None and math.isfinite(float(x)) and math.isfinite(float(y))]
    diffs = [x - y for x, y in pairs]
    spread = mean_interval(diffs, confidence)
    result = {"n": spread["n"], "difference": spread["mean"], "sd": spread["sd"], "se": spread["se"],
              "ci_low": spread["ci_low"], "ci_high": spread["ci_high"], "p_value": None}
    if len(pairs) < 2:
        return result
    if max(diffs) - min(diffs) <= 1e-12 * max(1.0, abs(diffs[0])):
        result["p_value"] = 1.0 if abs(diffs[0]) <= 1e-12 else 0.0
        return result
    with warnings.catch_warnings():  # nearly equal differences: scipy warns about precision, the figure stands
        warnings.simplefilter("ignore", RuntimeWarning)
        test = stats.ttest_rel([x for x, _ in pairs], [y for _, y in pairs])
    result["p_value"] = float(test.pvalue)
    return result


def significant(p_value: float | None, confidence: float = CONFIDENCE) -> bool | None:
    """Whether a p-value is below the test level 1 - confidence (None when there is no p-value)."""
    return None if p_value is None else p_value < 1 - confidence
