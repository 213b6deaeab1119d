"""tf.data pipelines: every image once per epoch, seeded reshuffles, order kept for evaluation, no Python ops."""
import numpy as np
import tensorflow as tf

from keras_latent.data.pipeline import denormalize, make_dataset, normalize


def _epoch(ds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pass: images (N, H, W, 3), labels (N,), reconstruction targets (N, H, W, 3)."""
    images, labels, targets = [], [], []
    for x, y in ds:
        images.append(x.numpy())
        labels.append(y["classifier"].numpy())
        targets.append(y["reconstruction"].numpy())
    return np.concatenate(images), np.concatenate(labels), np.concatenate(targets)


def _row_keys(images: np.ndarray) -> list[bytes]:
    return [denormalize(image).tobytes() for image in images]


def test_training_epochs_cover_every_image_once_in_a_new_order(sample_splits):
    x, y = sample_splits.x_train[:100], sample_splits.y_train[:100]
    ds = make_dataset(x, y, 32, training=True, seed=3)
    assert int(ds.cardinality()) == 4  # ceil(100 / 32): the last batch is kept
    first, second = _epoch(ds), _epoch(ds)
    source = dict(zip(_row_keys(np.asarray(normalize(x))), y))
    for images, labels, targets in (first, second):
        keys = _row_keys(images)
        assert sorted(keys) == sorted(source)  # each image exactly once
        assert [source[k] for k in keys] == labels.tolist()  # labels travel with their images
        np.testing.assert_array_equal(targets, images)  # the reconstruction target is the input
    assert _row_keys(first[0]) != _row_keys(second[0])  # reshuffled every epoch


def test_same_seed_same_order_and_another_seed_another(sample_splits):
    x, y = sample_splits.x_train[:64], sample_splits.y_train[:64]
    labels = [_epoch(make_dataset(x, y, 16, training=True, seed=s))[1].tolist() for s in (0, 0, 1)]
    assert labels[0] == labels[1] and labels[0] != labels[2]


def test_evaluation_keeps_order_and_normalizes_like_the_tutorial(sample_splits):
    x, y = sample_splits.x_test[:70], sample_splits.y_test[:70]
    ds = make_dataset(x, y, 32, training=False)
    first_images, _ = next(iter(ds))
    assert first_images.shape == (32, 32, 32, 3)
    images, labels, targets = _epoch(ds)
    np.testing.assert_allclose(images, (x.astype(np.float32) / 255 - 0.5) / 0.5, atol=1e-6)
    np.testing.assert_array_equal(labels, y)
    np.testing.assert_array_equal(targets, images)  # the reconstruction target is the input
    assert images.dtype == np.float32 and labels.dtype == np.int32


def test_classifier_only_targets(sample_splits):
    ds = make_dataset(sample_splits.x_test[:8], sample_splits.y_test[:8], 8, training=False, reconstruction_outputs=())
    _, targets = next(iter(ds))
    assert list(targets) == ["classifier"]


def test_augmentation_moves_pixels_but_keeps_labels(sample_splits):
    x, y = sample_splits.x_train[:64], sample_splits.y_train[:64]
    plain = make_dataset(x, y, 64, training=True, seed=0)
    augmented = make_dataset(x, y, 64, training=True, seed=0, augment=True)
    (xp, yp), (xa, ya) = next(iter(plain)), next(iter(augmented))
    np.testing.assert_array_equal(yp["classifier"].numpy(), ya["classifier"].numpy())  # same shuffle, same labels
    assert np.abs(xa.numpy() - xp.numpy()).mean() > 0.01
    np.testing.assert_array_equal(ya["reconstruction"].numpy(), xa.numpy())  # target is the augmented input


def test_no_python_function_in_the_input_pipeline(sample_splits):
    """The per-step work is graph ops only (no py_function/numpy_function holding the GIL)."""
    ds = make_dataset(sample_splits.x_train[:64], sample_splits.y_train[:64], 32, training=True, augment=True)
    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(ds._as_serialized_graph().numpy())
    ops = {node.op for node in graph.node} | {node.op for f in graph.library.function for node in f.node_def}
    assert "GatherV2" in ops and not ops & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}


def test_fixed_tf_data_settings_without_the_autotuner(sample_splits):
    """Autotuning is off (its thread halved the speed of some epochs on 2 cores); fixed settings take over."""
    ds = make_dataset(sample_splits.x_train[:64], sample_splits.y_train[:64], 32, training=True)
    assert ds.options().autotune.enabled is False
