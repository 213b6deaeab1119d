"""keras_latent.analysis.features: feature visualization (activation maximization) of every channel."""
import dataclasses

import keras
import numpy as np
import pytest

from keras_latent.analysis import features, latent
from keras_latent.data.pipeline import normalize
from keras_latent.errors import UsageError
from keras_latent.model.builders import trunk_blocks
from keras_latent.model.saving import load_run_model

QUICK = features.FeatureSettings(steps=16)  # for tests of plumbing, not of image quality


@pytest.fixture(scope="module")
def tiny_model(trained_run):
    return load_run_model(trained_run)


@pytest.mark.slow
def test_each_optimized_image_excites_its_channel_more_than_every_test_image(few_epochs_run, sample_splits):
    """The issue's check, with the documented defaults, on a model trained a few epochs: for all 22 channels."""
    model = load_run_model(few_epochs_run)
    x_test = np.asarray(normalize(sample_splits.x_test))  # all 1,017 test images
    x_train = np.asarray(normalize(sample_splits.x_train[:512]))
    for layer, width in (("conv1", 6), ("conv2", 16)):
        found = features.visualize_channels(model, layer, color_images=x_train)
        assert found.images.shape == (width, 32, 32, 3) and list(found.channels) == list(range(width))
        assert found.images.min() >= -1.0 and found.images.max() <= 1.0
        on_test = features.channel_means(model, x_test, layer)  # (1017, C): what channel_stats.csv averages
        on_own = features.channel_means(model, found.images, layer)[np.arange(width), found.channels]
        np.testing.assert_allclose(found.activation, on_own, rtol=1e-5)
        beaten = on_test.max(axis=0)  # the best real test image of each channel
        assert (found.activation > beaten).all(), (layer, found.activation, beaten)
        # each image is specific: it excites its own channel more than the images made for the other channels
        others = features.channel_means(model, found.images, layer)  # (K images, C channels)
        assert (others.argmax(axis=0) == np.arange(width)).mean() >= 0.8, others.argmax(axis=0)


def test_the_same_seed_gives_the_same_images_and_another_seed_others(tiny_model):
    first = features.visualize_channels(tiny_model, "conv1", [0, 3], QUICK)
    again = features.visualize_channels(tiny_model, "conv1", [0, 3], QUICK)
    other = features.visualize_channels(tiny_model, "conv1", [0, 3], dataclasses.replace(QUICK, seed=1))
    np.testing.assert_array_equal(first.images, again.images)
    assert np.abs(first.images - other.images).mean() > 1e-3
    assert list(first.channels) == [0, 3] and first.images.shape == (2, 32, 32, 3)


@pytest.mark.parametrize("parameterization, decorrelate", [("pixel", False), ("pixel", True), ("fourier", False)])
def test_every_parameterization_raises_the_channel(tiny_model, parameterization, decorrelate):
    settings = features.FeatureSettings(steps=48, parameterization=parameterization, decorrelate=decorrelate)
    found = features.visualize_channels(tiny_model, "conv2", [1, 2], settings)
    start = features.visualize_channels(tiny_model, "conv2", [1, 2], dataclasses.replace(settings, steps=1))
    assert (found.activation > start.activation).all(), (found.activation, start.activation)


def test_one_batched_call_equals_one_call_per_channel(tiny_model):
    together = features.visualize_channels(tiny_model, "conv2", [9, 4], QUICK)
    alone = [features.visualize_channels(tiny_model, "conv2", [c], QUICK) for c in (9, 4)]
    for j in range(2):  # a channel's image does not depend on the channels optimized beside it
        np.testing.assert_allclose(together.images[j], alone[j].images[0], atol=1e-4)
        assert together.activation[j] == pytest.approx(alone[j].activation[0], rel=1e-4)


def test_the_objective_is_the_block_output_before_its_relu(tiny_model, sample_splits):
    images = np.asarray(normalize(sample_splits.x_test[:4]))
    x = images
    for block in trunk_blocks(tiny_model):
        before = np.asarray(features.block_before_relu(block, x))
        after = np.asarray(block(x))
        np.testing.assert_allclose(np.maximum(before, 0.0), after, atol=1e-5)  # ReLU and max-pool commute
        assert (before < 0).any()  # ... and the objective sees below zero, where the ReLU is flat
        x = after
    means = np.asarray(features.pre_relu_channel_means(tiny_model, "conv2")(images))
    assert means.shape == (4, 16)
    activation = latent.layer_activations(tiny_model, images, "conv2").mean(axis=(1, 2))
    assert (np.maximum(means, 0) <= activation + 1e-5).all()  # relu(mean) <= mean(relu): ReLU is convex


def test_random_affine_is_the_identity_without_jitter_scale_or_rotation():
    images = np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    still = features.FeatureSettings(jitter=0, scale=0.0, rotation=0.0)
    np.testing.assert_allclose(np.asarray(features.random_affine(images, 5, still)), images, atol=1e-5)
    moving = features.FeatureSettings()
    step_5 = np.asarray(features.random_affine(images, 5, moving))
    np.testing.assert_array_equal(step_5, np.asarray(features.random_affine(images, 5, moving)))  # seeded
    assert np.abs(step_5 - images).mean() > 0.05
    assert np.abs(step_5 - np.asarray(features.random_affine(images, 6, moving))).mean() > 0.05


def test_colour_decorrelation_is_a_square_root_of_the_covariance(sample_splits):
    images = np.asarray(normalize(sample_splits.x_train[:64]))
    root = features.color_correlation_sqrt(images)
    covariance = np.cov(images.reshape(-1, 3), rowvar=False)
    np.testing.assert_allclose(root @ root.T, covariance, rtol=1e-4, atol=1e-6)


def test_total_variation_of_a_flat_image_is_zero_and_of_stripes_is_not():
    flat = np.full((1, 8, 8, 3), 0.3, np.float32)
    stripes = np.tile(np.array([-1.0, 1.0], np.float32), 4)[None, None, :, None] * np.ones((1, 8, 1, 3), np.float32)
    assert float(features.total_variation(flat)[0]) == 0.0
    assert float(features.total_variation(stripes)[0]) == pytest.approx(2.0)  # |1 - (-1)| across, 0 down


@pytest.mark.parametrize("change, message", [
    ({"steps": 0}, "steps must be >= 1, got 0"),
    ({"learning_rate": 0.0}, "learning_rate must be > 0, got 0.0"),
    ({"parameterization": "cppn"}, "parameterization must be one of fourier, pixel, got 'cppn'"),
    ({"scale": 1.0}, "scale must be in [0, 1), got 1.0"),
    ({"tv": -1.0}, "tv must be >= 0, got -1.0"),
])
def test_bad_settings_are_one_clear_line(tiny_model, change, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        features.visualize_channels(tiny_model, "conv1", settings=dataclasses.replace(QUICK, **change))


def test_bad_layer_or_channel_is_a_usage_error(tiny_model):
    with pytest.raises(UsageError, match="unknown trunk layer 'conv3'"):
        features.visualize_channels(tiny_model, "conv3", settings=QUICK)
    with pytest.raises(UsageError, match=r"channels \[6\] out of range for conv1"):
        features.visualize_channels(tiny_model, "conv1", [6], settings=QUICK)


def test_a_frozen_model_is_visualized_the_same(tiny_model):
    clone = keras.models.clone_model(tiny_model)
    clone.set_weights(tiny_model.get_weights())
    clone.trainable = False
    np.testing.assert_allclose(features.visualize_channels(clone, "conv1", [2], QUICK).images,
                               features.visualize_channels(tiny_model, "conv1", [2], QUICK).images, atol=1e-5)
