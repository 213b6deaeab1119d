"""The SavedModel's `gradcam` signature (uint8 images, layer, class -> heatmap) against the library's Grad-CAM."""
import numpy as np
import pytest
import tensorflow as tf

from keras_latent.analysis import attribution
from keras_latent.data.pipeline import normalize
from keras_latent.model.saving import load_run_model
from keras_latent.runs import layout


@pytest.fixture(scope="module")
def gradcam_signature(trained_run):
    """The signature of the SavedModel training wrote, and the run's Keras model."""
    return tf.saved_model.load(layout.SAVED_MODEL.path(trained_run)).signatures["gradcam"], load_run_model(trained_run)


def test_gradcam_signature_equals_the_library_at_every_layer(gradcam_signature, sample_splits):
    signature, model = gradcam_signature
    images = sample_splits.x_test[:5]
    asked = np.array([-1, 0, 3, -1, 9], np.int32)  # negative: the predicted class
    predicted = attribution.class_probabilities(model, np.asarray(normalize(images))).argmax(axis=1)
    for layer, name in ((1, "conv1"), (2, "conv2")):
        out = signature(images=tf.constant(images), layer=tf.constant(layer), class_index=tf.constant(asked))
        classes = out["class_index"].numpy()
        assert out["heatmap"].shape == (5, 32, 32) and classes.dtype == np.int64
        np.testing.assert_array_equal(classes, np.where(asked < 0, predicted, asked))
        expected = attribution.upsample(attribution.grad_cam(model, np.asarray(normalize(images)), classes,
                                                             [name])[name], 32)
        np.testing.assert_allclose(out["heatmap"].numpy(), expected, atol=1e-5 * max(expected.max(), 1e-12))
        np.testing.assert_allclose(out["probabilities"].numpy().argmax(axis=1), predicted)


@pytest.mark.parametrize("layer, classes, message", [
    (0, [0, 0], "layer must be 1..2 (conv1..conv2)"),
    (3, [0, 0], "layer must be 1..2 (conv1..conv2)"),
    (1, [0], "class_index must have one entry per image"),
    (1, [0, 10], "class_index must be below 10"),
])
def test_bad_layer_or_class_fails_with_the_allowed_values(gradcam_signature, sample_splits, layer, classes, message):
    signature, _ = gradcam_signature
    with pytest.raises(tf.errors.InvalidArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        signature(images=tf.constant(sample_splits.x_test[:2]), layer=tf.constant(layer),
                  class_index=tf.constant(classes, tf.int32))
