"""stats.py: t intervals and paired differences, checked against hand-computed figures and scipy's own test."""
import math

import pytest
from scipy import stats as scipy_stats

from keras_latent.stats import mean_interval, paired_difference, significant


def test_mean_interval_is_the_t_interval_of_the_mean():
    values = [0.40, 0.42, 0.44, 0.41, 0.43]
    result = mean_interval(values)
    sd = math.sqrt(sum((v - 0.42) ** 2 for v in values) / 4)
    half = 2.776445105 * sd / math.sqrt(5)  # t(0.975, df=4)
    assert result["n"] == 5 and result["mean"] == pytest.approx(0.42)
    assert result["sd"] == pytest.approx(sd) and result["se"] == pytest.approx(sd / math.sqrt(5))
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((0.42 - half, 0.42 + half))


def test_one_value_has_a_mean_but_no_spread_and_nan_is_left_out():
    assert mean_interval([0.5, float("nan"), None]) == {"n": 1, "mean": 0.5, "sd": None, "se": None, "ci_low": None,
                                                      "ci_high": None}
    assert mean_interval([])["mean"] is None


def test_paired_difference_matches_scipy_ttest_rel_and_its_interval():
    a, b = [0.43, 0.41, 0.45, 0.40, 0.44], [0.41, 0.41, 0.42, 0.39, 0.41]
    result = paired_difference(a, b)
    expected = scipy_stats.ttest_rel(a, b)
    low, high = expected.confidence_interval(0.95)
    assert result["n"] == 5 and result["difference"] == pytest.approx(0.018)
    assert result["p_value"] == pytest.approx(expected.pvalue)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((low, high))
    assert significant(result["p_value"]) == (expected.pvalue < 0.05)


def test_constant_differences_and_unpaired_values():
    same = paired_difference([0.4, 0.5, 0.6], [0.4, 0.5, 0.6])
    assert (same["difference"], same["p_value"], same["ci_low"], same["ci_high"]) == (0.0, 1.0, 0.0, 0.0)
    shifted = paired_difference([0.5, 0.6, 0.7], [0.4, 0.5, 0.6])
    assert shifted["p_value"] == 0.0 and shifted["difference"] == pytest.approx(0.1)
    # a pair with a NaN on either side is dropped; one pair left: a difference, no test
    single = paired_difference([0.5, float("nan")], [0.4, 0.3])
    assert single["n"] == 1 and single["p_value"] is None and significant(single["p_value"]) is None
