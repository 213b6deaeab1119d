"""keras_latent.analysis.attribution against textbook computations written out here, independently:
Grad-CAM from a GradientTape over each trunk block's output, saliency from a tape over the image."""
import numpy as np
import pytest
import tensorflow as tf

from keras_latent.analysis import attribution
from keras_latent.data.pipeline import normalize
from keras_latent.errors import UsageError
from keras_latent.model.saving import load_run_model


@pytest.fixture(scope="module")
def model(trained_run):
    return load_run_model(trained_run)


@pytest.fixture(scope="module")
def images(sample_splits):
    """Six test images, normalized, and their true classes."""
    return np.asarray(normalize(sample_splits.x_test[:6])), sample_splits.y_test[:6].astype(int)


def textbook_logits_and_activations(model, images):
    """Forward pass by hand: conv1 -> conv2 -> flatten -> fc1 -> fc2 -> logits = h W + b (no softmax),
    returning the tape, each block's output (watched) and the logits."""
    trunk, head = model.get_layer("trunk"), model.get_layer("classifier_head")
    tape = tf.GradientTape(persistent=True)
    x = tf.constant(images)
    with tape:
        tape.watch(x)
        a1 = trunk.get_layer("conv1")(x)
        tape.watch(a1)
        a2 = trunk.get_layer("conv2")(a1)
        tape.watch(a2)
        h = head.get_layer("fc2")(head.get_layer("fc1")(head.get_layer("flatten")(a2)))
        output = head.get_layer("probabilities")
        logits = tf.matmul(h, output.kernel) + output.bias
    return tape, x, {"conv1": a1, "conv2": a2}, logits


def textbook_grad_cam(model, images, classes) -> dict:
    """Selvaraju et al. (2017), eq. 1-2: alpha_k = mean_ij d y^c / d A^k_ij; L = ReLU(sum_k alpha_k A^k)."""
    tape, _, activations, logits = textbook_logits_and_activations(model, images)
    with tape:
        score = tf.reduce_sum(tf.gather(logits, classes, batch_dims=1))
    maps = {}
    for layer, a in activations.items():
        grads = tape.gradient(score, a).numpy()  # (N, h, w, C)
        alpha = grads.mean(axis=(1, 2))  # (N, C)
        maps[layer] = np.maximum(np.einsum("nhwc,nc->nhw", a.numpy(), alpha), 0.0)
    return maps


def textbook_input_gradient(model, images, classes) -> np.ndarray:
    tape, x, _, logits = textbook_logits_and_activations(model, images)
    with tape:
        score = tf.reduce_sum(tf.gather(logits, classes, batch_dims=1))
    return tape.gradient(score, x).numpy()


def test_logits_are_the_classifier_before_its_softmax(model, images):
    _, _, _, logits = textbook_logits_and_activations(model, images[0])
    probabilities = attribution.class_probabilities(model, images[0])
    np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), probabilities, atol=1e-6)


@pytest.mark.parametrize("which", ["predicted", "true", "fixed"])
def test_grad_cam_equals_the_textbook_computation_at_every_layer(model, images, which):
    x, y = images
    classes = {"predicted": attribution.class_probabilities(model, x).argmax(axis=1), "true": y,
               "fixed": np.full(len(x), 3)}[which]
    found = attribution.grad_cam(model, x, classes)
    expected = textbook_grad_cam(model, x, classes)
    assert list(found) == ["conv1", "conv2"]
    assert found["conv1"].shape == (6, 14, 14) and found["conv2"].shape == (6, 5, 5)
    for layer in found:
        scale = max(float(expected[layer].max()), 1e-12)
        np.testing.assert_allclose(found[layer], expected[layer], atol=1e-5 * scale, rtol=1e-4)
        assert (found[layer] >= 0).all()
        if which == "predicted":  # the evidence for the predicted class is somewhere: not a comparison of zeros
            assert (found[layer].max(axis=(1, 2)) > 0).all()


def test_grad_cam_depends_on_the_class(model, images):
    x, _ = images
    cams = [attribution.grad_cam(model, x[:1], c, layers=["conv2"])["conv2"] for c in (0, 1)]
    assert not np.allclose(cams[0], cams[1])


def test_input_gradients_equal_the_textbook_computation(model, images):
    x, y = images
    np.testing.assert_allclose(attribution.input_gradients(model, x, y), textbook_input_gradient(model, x, y),
                               atol=1e-6, rtol=1e-4)


def test_smoothgrad_averages_textbook_gradients_over_its_seeded_noise(model, images):
    x, y = images[0][:2], images[1][:2]
    samples, noise, seed = 8, 0.15, 3
    found = attribution.smoothgrad(model, x, y, samples=samples, noise=noise, seed=seed)
    draws = attribution.smoothgrad_noise(x.shape, samples, noise, seed)  # (samples, 2, 32, 32, 3)
    assert draws.shape == (8, 2, 32, 32, 3) and draws.std() == pytest.approx(0.3, rel=0.05)  # 15% of [-1, 1]
    mean_gradient = np.mean([textbook_input_gradient(model, x + d, y) for d in draws], axis=0)
    expected = np.abs(mean_gradient).max(axis=-1)
    assert found.shape == (2, 32, 32)
    np.testing.assert_allclose(found, expected, atol=1e-6, rtol=1e-4)
    without_noise = attribution.smoothgrad(model, x, y, samples=1, noise=0.0)
    np.testing.assert_allclose(without_noise, np.abs(textbook_input_gradient(model, x, y)).max(axis=-1),
                               atol=1e-6, rtol=1e-4)


def test_upsample_keeps_a_constant_map_and_reaches_the_image_size():
    maps = np.stack([np.full((5, 5), 2.0), np.arange(25.0).reshape(5, 5)])
    resized = attribution.upsample(maps, 32)
    assert resized.shape == (2, 32, 32)
    np.testing.assert_allclose(resized[0], 2.0, atol=1e-6)
    assert resized[1].min() >= 0.0 and resized[1].max() <= 24.0 and resized[1, -1, -1] > resized[1, 0, 0]


def test_bad_input_is_one_clear_line(model, images):
    x, y = images
    with pytest.raises(UsageError, match=r"class indices must be between 0 and 9, got \[10\]"):
        attribution.grad_cam(model, x[:1], 10)
    with pytest.raises(UsageError, match=r"images must have shape \(N, 32, 32, 3\) with N >= 1, got \(32, 32, 3\)"):
        attribution.smoothgrad(model, x[0], 0)
    with pytest.raises(UsageError, match="unknown trunk layer 'conv7'"):
        attribution.grad_cam(model, x[:1], 0, layers=["conv7"])
    with pytest.raises(UsageError, match="SmoothGrad needs samples >= 1"):
        attribution.smoothgrad(model, x[:1], 0, samples=0)
