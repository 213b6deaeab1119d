"""keras_latent.analysis.latent and analysis.plots: masked decoding, channel statistics, ablation, figures."""

import keras
import numpy as np
import pytest

from keras_latent.analysis import latent
from keras_latent.analysis import plots as latent_plots
from keras_latent.config import ModelConfig, default_padding
from keras_latent.data.pipeline import normalize
from keras_latent.errors import UsageError
from keras_latent.model.builders import build_model
from keras_latent.model.saving import load_run_model


@pytest.fixture(scope="module")
def trained_model(trained_run):
    return load_run_model(trained_run)


@pytest.fixture(scope="module")
def test_images(sample_splits):
    """First 200 sample test images, normalized (N, 32, 32, 3), and their labels."""
    return np.asarray(normalize(sample_splits.x_test[:200])), sample_splits.y_test[:200]


def hand_masked(activations: np.ndarray, keep: list[int]) -> np.ndarray:
    """Copy of (B, h, w, C) activations with every channel outside `keep` set to zero."""
    masked = activations.copy()
    masked[..., [c for c in range(activations.shape[-1]) if c not in keep]] = 0.0
    return masked


@pytest.mark.parametrize("layer", ["conv1", "conv2"])
def test_keep_one_equals_decoding_hand_zeroed_activations(trained_model, test_images, layer):
    images = test_images[0][:3]
    decoded = latent.masked_reconstructions(trained_model, images, layer, mode="keep")
    activations = latent.layer_activations(trained_model, images, layer)
    n = activations.shape[-1]
    assert decoded.shape == (3, n, 32, 32, 3)
    tail = latent.decoder_from(trained_model, layer)
    for k in range(n):
        expected = np.asarray(tail.predict(hand_masked(activations, [k]), verbose=0))
        np.testing.assert_allclose(decoded[:, k], expected, atol=1e-5)
    assert not np.allclose(decoded[:, 0], decoded[:, 1], atol=1e-3)  # the channels really differ


def test_drop_one_equals_decoding_with_one_channel_zeroed(trained_model, test_images):
    images = test_images[0][:3]
    channels = [5, 0, 2]
    decoded = latent.masked_reconstructions(trained_model, images, "conv1", channels=channels, mode="drop")
    activations = latent.layer_activations(trained_model, images, "conv1")
    tail = latent.decoder_from(trained_model, "conv1")
    assert decoded.shape == (3, 3, 32, 32, 3)
    for j, k in enumerate(channels):
        expected = np.asarray(tail.predict(hand_masked(activations, [c for c in range(6) if c != k]), verbose=0))
        np.testing.assert_allclose(decoded[:, j], expected, atol=1e-5)
    full = np.asarray(tail.predict(activations, verbose=0))
    assert not np.allclose(decoded[:, 0], full, atol=1e-3)  # zeroing channel 5 changes the picture


def test_batched_decoding_equals_a_per_channel_loop(trained_model, test_images):
    images = test_images[0][:5]
    batched = latent.masked_reconstructions(trained_model, images, "conv2")
    looped = np.concatenate([latent.masked_reconstructions(trained_model, images, "conv2", channels=[k])
                             for k in range(16)], axis=1)
    assert batched.shape == looped.shape == (5, 16, 32, 32, 3)
    np.testing.assert_allclose(batched, looped, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["keep", "drop"])
def test_every_channel_of_a_three_block_trunk_decodes_to_the_input_shape(mode):
    filters = (3, 4, 5)
    model = build_model(ModelConfig(filters=filters, padding=default_padding(32, filters, 5)))
    images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    assert latent.trunk_block_names(model) == ["conv1", "conv2", "conv3"]
    for layer, width in zip(("conv1", "conv2", "conv3"), filters):
        assert latent.encoder(model, layer).predict(images, verbose=0).shape[-1] == width
        decoded = latent.masked_reconstructions(model, images, layer, mode=mode)
        assert decoded.shape == (2, width, 32, 32, 3)
        assert np.all(np.abs(decoded) <= 1.0)  # tanh output, the input's range


def test_unknown_layer_lists_the_valid_ones(trained_model, test_images):
    for call in (lambda: latent.encoder(trained_model, "conv7"),
                 lambda: latent.decoder_from(trained_model, "conv7"),
                 lambda: latent.masked_reconstructions(trained_model, test_images[0][:1], "dense")):
        with pytest.raises(UsageError, match=r"unknown trunk layer .* are conv1, conv2"):
            call()


def test_channel_masks_and_their_checks():
    np.testing.assert_array_equal(latent.channel_masks(4, [2, 0]), [[0, 0, 1, 0], [1, 0, 0, 0]])
    np.testing.assert_array_equal(latent.channel_masks(3, mode="drop"), 1 - np.eye(3))
    with pytest.raises(UsageError, match="mode must be one of keep, drop, got 'all'"):
        latent.channel_masks(3, mode="all")
    with pytest.raises(UsageError, match=r"channels \[6\] out of range for conv1: it has 6 channels \(0..5\)"):
        latent.check_channels(6, [1, 6], "conv1")


def test_a_model_without_decoder_refuses_reconstructions_but_ablates(test_images):
    model = build_model(ModelConfig(decoder=False))
    images, labels = test_images
    with pytest.raises(UsageError, match="no decoder .*--no-decoder"):
        latent.decoder_from(model, "conv1")
    with pytest.raises(UsageError, match="no decoder"):
        latent.masked_reconstructions(model, images[:2], "conv2")
    ablation = latent.ablate_channels(model, images[:50], labels[:50], "conv2", 10, channels=[0, 1])
    assert ablation.accuracy.shape == (2,) and ablation.per_class.shape == (2, 10)


def test_ablation_zeroes_the_channel_inside_the_trained_graph(trained_model, test_images):
    """Zeroing conv1 channel 3 equals running conv2 and the head by hand on hand-zeroed activations."""
    images, labels = test_images
    probs = latent.predict_masked(latent.ablation_model(trained_model, "conv1"), images[:20],
                                  np.stack([np.ones(6), 1 - np.eye(6)[3]]))  # (20, 2, 10)
    np.testing.assert_allclose(probs[:, 0], trained_model.predict(images[:20], verbose=0)["classifier"], atol=1e-5)
    trunk = trained_model.get_layer("trunk")
    zeroed = hand_masked(latent.layer_activations(trained_model, images[:20], "conv1"), [0, 1, 2, 4, 5])
    expected = trained_model.get_layer("classifier_head")(trunk.get_layer("conv2")(zeroed))
    np.testing.assert_allclose(probs[:, 1], np.asarray(expected), atol=1e-5)
    assert not np.allclose(probs[:, 0], probs[:, 1], atol=1e-4)


def test_ablating_a_dead_channel_leaves_accuracy_unchanged(trained_run, test_images):
    model = load_run_model(trained_run)
    conv = model.get_layer("trunk").get_layer("conv1").get_layer("conv1_conv")
    kernel, bias = conv.get_weights()
    kernel[..., 2], bias[2] = 0.0, -1.0  # relu(-1) = 0 everywhere: channel 2 is dead
    conv.set_weights([kernel, bias])
    images, labels = test_images
    assert np.all(latent.layer_activations(model, images, "conv1")[..., 2] == 0.0)
    ablation = latent.ablate_channels(model, images, labels, "conv1", 10)
    intact = float(np.mean(model.predict(images, verbose=0)["classifier"].argmax(axis=1) == labels))
    assert ablation.intact_accuracy == pytest.approx(intact)
    assert ablation.accuracy_drop[2] == 0.0
    np.testing.assert_array_equal(ablation.per_class[2], ablation.intact_per_class)
    assert np.any(ablation.accuracy_drop != 0.0)  # live channels do matter


def test_channel_statistics_match_a_hand_computation(trained_model, test_images):
    images, labels = test_images
    stats = latent.channel_statistics(trained_model, images, labels, "conv2", 10)
    per_image = latent.layer_activations(trained_model, images, "conv2").mean(axis=(1, 2))  # (N, 16)
    np.testing.assert_allclose(stats.mean_activation, per_image.mean(axis=0), rtol=1e-4)
    for c in range(10):
        np.testing.assert_allclose(stats.class_mean_activation[:, c], per_image[labels == c].mean(axis=0), rtol=1e-4)
    absent = latent.channel_statistics(trained_model, images[:5], np.zeros(5, int), "conv1", 3)
    assert np.all(np.isnan(absent.class_mean_activation[:, 1:]))


def test_rank_channels_orders_by_drop_then_index():
    ablation = latent.Ablation("conv1", np.array([0, 1, 2, 3]), 0.5, np.array([0.5, 0.5]),
                               accuracy=np.array([0.45, 0.5, 0.4, 0.45]),
                               per_class=np.array([[0.5, 0.4], [0.3, np.nan], [0.5, 0.5], [0.6, 0.2]]))
    overall, per_class = latent.rank_channels(ablation, ("a", "b"))
    assert [r["channel"] for r in overall] == [2, 0, 3, 1]
    assert overall[0]["accuracy_drop"] == pytest.approx(0.1)
    assert per_class == {"a": [1, 0, 2, 3], "b": [3, 0, 2, 1]}  # NaN (no image) ranks last
    assert latent.rank_channels(ablation, ("a", "b"), top=2)[1]["a"] == [1, 0]


def test_masked_models_save_and_reload_with_the_same_outputs(trained_model, test_images, tmp_path):
    activations = latent.layer_activations(trained_model, test_images[0][:4], "conv2")
    masks = latent.channel_masks(16, [1, 7])
    for model, inputs in ((latent.masked_decoder(trained_model, "conv2"), activations),
                          (latent.ablation_model(trained_model, "conv2"), test_images[0][:4])):
        path = str(tmp_path / f"{model.name}.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path, safe_mode=True)  # no Lambda layers inside
        np.testing.assert_allclose(latent.predict_masked(reloaded, inputs, masks),
                                   latent.predict_masked(model, inputs, masks), atol=1e-6)


@pytest.mark.parametrize("n_channels, cols", [(6, 6), (16, 8), (128, 16)])
def test_channel_figures_label_every_tile_and_wrap_into_rows(n_channels, cols):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    tiles = rng.integers(0, 255, (n_channels, 32, 32, 3), dtype=np.uint8)
    channels = list(range(n_channels))
    grid = latent_plots.plot_channel_grid(image, image, tiles, channels, "t", mode="drop")
    maps = latent_plots.plot_activation_maps(image, rng.uniform(0, 2, (5, 5, n_channels)), channels, "t")
    for fig, header in ((grid, ["original", "all channels"]), (maps, ["original"])):
        assert [t.get_text() for ax in fig.axes for t in ax.texts] == header + [f"ch {c}" for c in channels]
        fig.canvas.draw()
    body = grid.axes[1].images[0].get_array()  # the channel montage, cols tiles per row
    width, height = cols * 32 + (cols - 1) * 3, -(-n_channels // cols) * (32 + 10)
    assert body.shape == (height, width, 3)
    np.testing.assert_array_equal(body[10:42, :32], tiles[0])


def test_montage_places_tiles_row_by_row_with_label_gaps():
    tiles = np.arange(5 * 4 * 10, dtype=np.float32).reshape(5, 4, 10)  # (K, h, w)
    canvas, anchors = latent_plots.montage(tiles, cols=2, fill=np.nan)
    assert canvas.shape == (3 * (4 + 2), 2 * 10 + 1)
    np.testing.assert_array_equal(canvas[2:6, 11:21], tiles[1])
    np.testing.assert_array_equal(canvas[14:18, 0:10], tiles[4])
    assert np.all(np.isnan(canvas[14:18, 11:]))  # no sixth tile
    assert anchors[3] == (11 + 4.5, 8 - 0.5)


def test_heatmap_and_ablation_figures_draw():
    rng = np.random.default_rng(0)
    channels = np.array([0, 3, 5])
    names = ("cat", "dog")
    heat = latent_plots.plot_channel_class_heatmap(np.array([1.0, 0.0, 2.0]), rng.uniform(0, 2, (3, 2)), channels,
                                                   names, "conv1")
    bars = latent_plots.plot_ablation(channels, np.array([0.1, -0.02, 0.0]), 0.6, rng.uniform(-0.1, 0.1, (3, 2)),
                                      names, "conv1")
    assert [t.get_text() for t in bars.axes[0].get_xticklabels()] == ["0", "3", "5"]
    assert "60.0%" in bars.axes[0].get_legend().get_texts()[0].get_text()
    assert [t.get_text() for t in heat.axes[0].get_yticklabels()] == ["cat", "dog"]
    for fig in (heat, bars):
        fig.canvas.draw()


def test_propagate_path_runs_the_rest_of_the_trunk_then_the_whole_decoder(trained_model, sample_splits):
    x = np.asarray(normalize(sample_splits.x_test[:4]))
    conv1 = latent.encoder(trained_model, "conv1")(x)
    conv2 = trained_model.get_layer("trunk").get_layer("conv2")(conv1)
    expected = latent.decoder_from(trained_model, "conv2", "tail")(conv2)
    np.testing.assert_allclose(latent.decoder_from(trained_model, "conv1", "propagate")(conv1), expected, atol=1e-6)
    np.testing.assert_allclose(expected, trained_model(x)["reconstruction"], atol=1e-6)
    masks = latent.channel_masks(6, [2], "keep")
    decoded = latent.predict_masked(latent.masked_decoder(trained_model, "conv1", "propagate"), np.asarray(conv1),
                                    masks)  # (4, 1, S, S, 3)
    only_2 = np.asarray(conv1) * masks[0]
    np.testing.assert_allclose(decoded[:, 0], latent.decoder_from(trained_model, "conv1", "propagate")(only_2),
                               atol=1e-5)
    with pytest.raises(UsageError, match="decode path must be one of tail, propagate, got 'sideways'"):
        latent.decoder_from(trained_model, "conv1", "sideways")
