"""The user's graph re-run around chosen layers: features, ablation (masked model) and Grad-CAM scores, each
against an independent computation with the user's layers called by hand; the user's model unchanged."""
import attached_models
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_latent.attached import _keras_graph
from keras_latent.attached.graph import CLASS_OUTPUT, SCORES, ModelGraph
from keras_latent.attached.reading import weights_digest
from keras_latent.errors import UsageError


def pixels(shape, n=4, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, *shape)).astype(np.float32)


def prediction(model, x, index=-1):
    out = model.predict_on_batch(x)
    return np.asarray(out[index] if isinstance(out, list) else out)


def test_canary_the_private_graph_members_read_keras_as_it_is():
    """graph_nodes lists a functional model's calls in order: if Keras changes them, this fails first."""
    model = attached_models.functional_block()
    ops = [node.operation.name for node in _keras_graph.graph_nodes(model)]
    assert ops == ["entry", "block", "exit", "flat", "logits"]
    assert _keras_graph.is_functional(model) and not _keras_graph.is_functional(attached_models.sequential_softmax())
    node = _keras_graph.graph_nodes(model)[0]
    (x,), _ = node.arguments({id(model.inputs[0]): "filled"})
    assert x == "filled"


BUILDERS = [(attached_models.sequential_softmax, {}), (attached_models.residual_stem, {}),
            pytest.param(attached_models.applications_backbone, {}, marks=pytest.mark.slow),  # ~25 s on 2 cores
            (attached_models.two_outputs, {"class_output": "probs"}),
            (attached_models.functional_block, {})]


@pytest.mark.parametrize("build, kwargs", BUILDERS, ids=lambda b: getattr(b, "__name__", ""))
def test_features_and_all_ones_masks_give_the_users_prediction_and_change_nothing(build, kwargs):
    model = build()
    digest = weights_digest(model)
    graph = ModelGraph(model, **kwargs)
    x = pixels(graph.image_shape)
    expected = prediction(model, x)
    layers = graph.default_layers()
    assert layers
    out = graph.feature_model(layers).predict_on_batch(x)
    np.testing.assert_allclose(out[CLASS_OUTPUT], expected, rtol=1e-5, atol=1e-6)
    for layer in layers:
        assert out[layer].shape == (4, *graph.layers[layer].shape)
    for layer in sorted({layers[0], layers[-1]}):  # the first and last: keeps the MobileNetV2 case short
        masks = np.ones((4, 2, graph.layers[layer].shape[-1]), np.float32)
        masked = graph.masked_model(layer).predict_on_batch([x, masks])
        assert masked.shape == (4, 2, graph.num_classes)
        np.testing.assert_allclose(masked, np.repeat(expected[:, None], 2, axis=1), rtol=1e-4, atol=1e-5)
    graph.score_model(layers)
    assert weights_digest(model) == digest
    np.testing.assert_array_equal(prediction(model, x), expected)


def test_nested_layers_equal_their_own_models_activations():
    model = attached_models.applications_backbone()
    backbone = model.get_layer("mobilenetv2_0.35_32")
    graph = ModelGraph(model)
    layer = "block_3_expand_relu"  # a unique inner name
    (path,) = graph.resolve([layer])
    assert path == "mobilenetv2_0.35_32/block_3_expand_relu"
    x = pixels((32, 32, 3), seed=1) / 127.5 - 1
    inner = keras.Model(backbone.input, backbone.get_layer(layer).output)
    np.testing.assert_allclose(graph.feature_model([path]).predict_on_batch(x)[path], inner.predict_on_batch(x),
                               rtol=1e-4, atol=1e-4)


def test_layers_run_in_inference_mode_under_a_gradient_tape():
    model = attached_models.residual_stem()
    digest = weights_digest(model)
    graph = ModelGraph(model)
    x = pixels((32, 32, 3))
    with tf.GradientTape() as tape:  # as Grad-CAM calls it: Dropout and BatchNorm in inference mode
        tape.watch(xt := tf.constant(x))
        out = graph.score_model(["res_relu"])(xt)
        score = out[SCORES][:, 0]
    assert np.abs(np.asarray(tape.gradient(score, xt))).max() > 0
    np.testing.assert_allclose(out[CLASS_OUTPUT], prediction(model, x), rtol=1e-5, atol=1e-5)
    assert weights_digest(model) == digest  # BatchNorm's moving statistics untouched


def test_layer_names_paths_defaults_and_refusals():
    graph = ModelGraph(attached_models.residual_stem())
    assert graph.resolve(["stem/relu1", "relu1", "down"]) == ["stem/relu1", "down"]
    assert graph.default_layers() == ["res_relu", "down"]
    assert ModelGraph(attached_models.sequential_softmax()).default_layers() == ["conv1", "conv2", "pool2"]
    for names, words in [(["nope"], "unknown layer 'nope'"), (["gap"], "not 4-D"), (["logits"], "not 4-D"),
                         ([], "non-empty"), ("down", "non-empty")]:
        message = str(pytest.raises(UsageError, graph.resolve, names).value)
        assert words in message and "\n" not in message
        if names and names != "down":
            assert "stem/relu1" in message and "res_relu" in message  # the layers that can be chosen
    shared = ModelGraph(attached_models.two_outputs(), class_output="probs")
    assert "called 2 times" in str(pytest.raises(UsageError, shared.resolve, ["shared"]).value)
    assert "shared" not in shared.eligible_layers()


def test_a_model_with_two_outputs_needs_its_class_output_named():
    model = attached_models.two_outputs()
    assert "aux, probs" in str(pytest.raises(UsageError, ModelGraph, model).value)
    assert "class output" in str(pytest.raises(UsageError, ModelGraph, model, class_output="nope").value)
    assert "not (classes,)" not in str(pytest.raises(UsageError, ModelGraph, model, class_output="nope").value)


def test_input_range_detected_from_a_leading_rescaling_else_required():
    assert ModelGraph(attached_models.residual_stem()).image_spec().input_range == (0.0, 255.0)
    graph = ModelGraph(attached_models.functional_block())
    assert "input range" in str(pytest.raises(UsageError, graph.image_spec).value)
    assert graph.image_spec((-1, 1)).input_range == (-1.0, 1.0)
    assert "lo < hi" in str(pytest.raises(UsageError, graph.image_spec, (1, 1)).value)


# ---------------------------------------------------------------- ablation against a hand-built graph


def residual_by_hand(model, x, mask):
    """residual_stem computed eagerly with its own layers, the stem's relu1 channels multiplied by `mask`."""
    stem = model.get_layer("stem")
    a = stem(x, training=False) * mask  # stem ends in relu1
    y = model.get_layer("res_bn")(model.get_layer("res_conv")(a), training=False)
    h = model.get_layer("res_relu")(model.get_layer("res_add")([a, y]))  # the skip sees the masked channel too
    h = model.get_layer("gap")(model.get_layer("down")(h))
    return np.asarray(model.get_layer("logits")(model.get_layer("drop")(h, training=False)))


def block_by_hand(model, x, mask):
    """functional_block eagerly, the nested block's conv "a" channels multiplied by `mask`."""
    block = model.get_layer("block")
    e = model.get_layer("entry")(x)
    h = block.get_layer("sum")([e, block.get_layer("b")(block.get_layer("a")(e) * mask)])
    return np.asarray(model.get_layer("logits")(model.get_layer("flat")(model.get_layer("exit")(h))))


@pytest.mark.parametrize("build, layer, by_hand", [(attached_models.residual_stem, "stem/relu1", residual_by_hand),
                                                   (attached_models.functional_block, "block/a", block_by_hand)])
def test_a_zeroed_channel_equals_the_hand_built_graph_skip_connections_included(build, layer, by_hand):
    model = build()
    graph = ModelGraph(model)
    x = pixels(graph.image_shape)
    c = graph.num_channels(layer)
    masks = np.ones((c + 1, c), np.float32)
    masks[1:] -= np.eye(c, dtype=np.float32)  # row 0 intact, row 1 + k: channel k zeroed
    masked = graph.masked_model(layer).predict_on_batch([x, np.broadcast_to(masks, (len(x), *masks.shape))])
    for k in (0, c - 1):
        np.testing.assert_allclose(masked[:, 1 + k], by_hand(model, x, masks[1 + k]), rtol=1e-4, atol=1e-4)
    assert np.abs(masked[:, 1] - masked[:, 0]).max() > 1e-4  # zeroing a channel changes something: not vacuous


# ---------------------------------------------------------------- scores and Grad-CAM


def gradcam(acts, grads):
    weights = grads.mean(axis=(1, 2), keepdims=True)
    return np.maximum((weights * acts).sum(axis=-1), 0.0)


def interpreter_gradcam(graph, layer, x, cls):
    scorer = graph.score_model([layer])
    with tf.GradientTape() as tape:
        out = scorer(x)
        score = out[SCORES][:, cls]
    grads = tape.gradient(score, out[layer])
    return gradcam(np.asarray(out[layer]), np.asarray(grads))


def test_gradcam_equals_gradient_tape_on_a_hand_built_model_pre_softmax():
    model = attached_models.sequential_softmax()
    graph = ModelGraph(model)
    assert (graph.output_kind, graph.score_source) == ("probabilities", "pre-activation")
    x = pixels((32, 32, 3))
    cams = interpreter_gradcam(graph, "conv2", x, 3)
    xt = tf.constant(x)
    get = model.get_layer
    with tf.GradientTape() as tape:
        acts = get("conv2")(get("pool1")(get("conv1")(get("rescale")(xt))))
        tape.watch(acts)
        pooled = get("gap")(get("pool2")(acts))
        logits = tf.matmul(pooled, get("probs").kernel) + get("probs").bias  # the score before the softmax
        score = logits[:, 3]
    expected = gradcam(np.asarray(acts), np.asarray(tape.gradient(score, acts)))
    assert expected.max() > 0
    np.testing.assert_allclose(cams, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(tf.nn.softmax(logits), prediction(model, x), rtol=1e-5, atol=1e-6)


def test_gradcam_on_a_nested_layer_of_a_logits_model():
    model = attached_models.residual_stem()
    graph = ModelGraph(model)
    assert (graph.output_kind, graph.score_source) == ("logits", "output")
    x = pixels((32, 32, 3))
    cams = interpreter_gradcam(graph, "stem/relu1", x, 1)
    with tf.GradientTape() as tape:
        a = model.get_layer("stem")(tf.constant(x), training=False)
        tape.watch(a)
        score = residual_by_hand_tensor(model, a)[:, 1]
    expected = gradcam(np.asarray(a), np.asarray(tape.gradient(score, a)))
    np.testing.assert_allclose(cams, expected, rtol=1e-4, atol=1e-5)


def residual_by_hand_tensor(model, a):
    y = model.get_layer("res_bn")(model.get_layer("res_conv")(a), training=False)
    h = model.get_layer("res_relu")(model.get_layer("res_add")([a, y]))
    return model.get_layer("logits")(model.get_layer("gap")(model.get_layer("down")(h)))


def test_scores_follow_output_kind_and_an_activation_layer():
    model = attached_models.two_outputs()
    graph = ModelGraph(model, class_output="probs")
    x = pixels((24, 40, 1))
    dense = keras.Model(model.input, model.get_layer("dense").output)
    np.testing.assert_allclose(graph.score_model().predict_on_batch(x)[SCORES], dense.predict_on_batch(x),
                               rtol=1e-5, atol=1e-5)
    as_is = ModelGraph(attached_models.sequential_softmax(), output_kind="logits")
    assert as_is.score_source == "output"
    out = as_is.score_model().predict_on_batch(pixels((32, 32, 3)))
    np.testing.assert_array_equal(out[SCORES], out[CLASS_OUTPUT])
    with pytest.raises(UsageError, match="output kind must be one of probabilities, logits"):
        ModelGraph(attached_models.sequential_softmax(), output_kind="softmax")


def test_layer_names_that_clash_once_a_nested_model_is_opened_are_one_line_and_a_layer_named_image_is_fine():
    stem = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, padding="same", name="conv")],
                            name="stem")
    image = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="image")(stem(image))  # same name as the stem's layer
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="conv")(x)
    model = keras.Model(image, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    graph = ModelGraph(model)
    assert graph.feature_model(["image"]).predict_on_batch(pixels((16, 16, 3)))["image"].shape == (4, 16, 16, 4)
    message = str(pytest.raises(UsageError, graph.feature_model, ["stem/conv"]).value)
    assert "one name side by side" in message and "\n" not in message
