"""evaluation: predictions batch by batch equal Keras's predict (only the outputs evaluation reads are kept);
the reconstruction MSE computed in slices equals the whole-array one; the confusion matrix, the report's
figures and its text equal scikit-learn's."""
import numpy as np
import pytest
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


CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _predictions(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predicted): right 60% of the time, never predicting "frog" and with no "ship" image."""
    rng = np.random.default_rng(seed)
    labels = rng.choice([c for c in range(10) if c != 8], n)
    predicted = np.where(rng.random(n) < 0.6, labels, rng.integers(0, 10, n))
    return labels, np.where(predicted == 6, 0, predicted)


def test_the_report_and_confusion_matrix_equal_scikit_learns():
    """Per-class precision, recall, F1 and support, their macro and weighted averages, the confusion matrix and
    the report's text: scikit-learn's `classification_report(digits=4, zero_division=0)` and `confusion_matrix`,
    also for a class never predicted (precision 0) and one with no image (recall 0, support 0)."""
    from sklearn.metrics import classification_report
    from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

    for seed, n in ((0, 1000), (1, 37)):
        labels, predicted = _predictions(seed, n)
        metrics = evaluation.evaluate_predictions(np.eye(10)[predicted], labels, CLASSES)
        expected = classification_report(labels, predicted, labels=list(range(10)), target_names=list(CLASSES),
                                         output_dict=True, zero_division=0)
        for name in CLASSES:
            ours = metrics["per_class"][name]
            assert [ours["precision"], ours["recall"], ours["f1"], ours["support"]] == pytest.approx(
                [expected[name][k] for k in ("precision", "recall", "f1-score", "support")], abs=1e-12), name
        for ours, theirs in (("macro", "macro avg"), ("weighted", "weighted avg")):
            assert [metrics["averages"][ours][k] for k in ("precision", "recall", "f1")] == pytest.approx(
                [expected[theirs][k] for k in ("precision", "recall", "f1-score")], abs=1e-12), ours
        assert metrics["per_class"]["frog"]["precision"] == 0 and metrics["per_class"]["ship"]["support"] == 0
        assert metrics["confusion_matrix"] == sklearn_confusion_matrix(labels, predicted, labels=range(10)).tolist()
        text = classification_report(labels, predicted, labels=list(range(10)), target_names=list(CLASSES),
                                     digits=4, zero_division=0)
        assert metrics["report"].startswith(text.rstrip("\n") + "\n\nper-class accuracy")
