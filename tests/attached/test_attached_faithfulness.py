"""Faithfulness figures: MSE, PSNR, the mean image and Dosovitskiy & Brox's normalized error."""
import itertools

import numpy as np
import pytest

from keras_latent.attached.faithfulness import faithfulness_table, mean_pairwise_distance, normalized_error, psnr
from keras_latent.errors import UsageError


def test_mean_pairwise_distance_equals_the_brute_force_mean():
    x = np.random.default_rng(0).random((12, 4, 4, 3))
    brute = np.mean([np.linalg.norm(a - b) for a, b in itertools.combinations(x, 2)])
    assert mean_pairwise_distance(x) == pytest.approx(brute, rel=1e-9)
    assert mean_pairwise_distance(x, max_images=6) != pytest.approx(brute, rel=1e-9)  # a subset: differs
    with pytest.raises(UsageError, match="at least 2"):
        mean_pairwise_distance(x[:1])


def test_the_mean_image_scores_about_71_percent_on_the_sample(sample_splits):
    """Dosovitskiy & Brox's baseline: the mean image's error is ~71% of the mean distance between images."""
    test = sample_splits.x_test / 255.0
    table = faithfulness_table(test, {"perfect": test, "noisy": np.clip(test + 0.05, 0, 1)},
                               sample_splits.x_train.mean(0) / 255.0)
    assert 65 < table["mean_image"]["normalized_error_pct"] < 75
    assert table["layers"]["perfect"]["normalized_error_pct"] == 0 and table["layers"]["perfect"]["mse"] == 0
    assert table["layers"]["noisy"]["mse"] < table["mean_image"]["mse"]
    assert table["no_better_than_mean_image"] == []
    worse = faithfulness_table(test, {"flipped": 1 - test}, sample_splits.x_train.mean(0) / 255.0)
    assert worse["no_better_than_mean_image"] == ["flipped"]


def test_psnr_and_normalized_error_by_hand():
    assert psnr(0.01) == pytest.approx(20.0)
    assert psnr(0.0) == float("inf")
    images, decoded = np.zeros((2, 2, 2, 1)), np.full((2, 2, 2, 1), 0.5)  # each error: sqrt(4 * 0.25) = 1
    assert normalized_error(images, decoded, pair_distance=4.0) == pytest.approx(25.0)
