"""evaluation: predictions batch by batch equal Keras's predict (only the outputs evaluation reads are kept);
the reconstruction MSE computed in slices equals the whole-array one."""
import numpy as np
from helpers import tiny_config

from keras_latent.data.pipeline import make_dataset, normalize
from keras_latent.model import build_model
from keras_latent.model.builders import reconstruction_outputs
from keras_latent.training import evaluation


def test_predict_batch_by_batch_equals_keras_predict(sample_splits):
    config = tiny_config()
    model = build_model(config.model)
    x, y = sample_splits.x_test[:70], sample_splits.y_test[:70]
    dataset = make_dataset(x, y, 32, training=False, reconstruction_outputs=reconstruction_outputs(config.model))
    ours = evaluation.predict(model, dataset)
    theirs = model.predict(dataset, verbose=0)
    assert set(ours) == {"classifier", "reconstruction"} and "reconstruction_conv1" in theirs
    for name in ours:
        assert ours[name].shape[0] == 70
        np.testing.assert_allclose(ours[name], np.asarray(theirs[name]), rtol=1e-5, atol=1e-6)


def test_reconstruction_mse_in_slices(sample_splits):
    rng = np.random.default_rng(0)
    images = np.asarray(normalize(sample_splits.x_test[:5000]))
    reconstruction = images + rng.normal(0, 0.1, images.shape).astype(np.float32)
    probs = np.eye(10)[sample_splits.y_test[:5000]]
    result = evaluation.evaluate_predictions(probs, sample_splits.y_test[:5000], sample_splits.class_names,
                                             reconstruction, images)
    assert result["test_accuracy"] == 1.0
    np.testing.assert_allclose(result["test_reconstruction_mse"], np.mean((reconstruction - images) ** 2), rtol=1e-6)
