"""Model builders: pure functions from a ModelConfig to Keras models (Keras 3 APIs only).

    image (B, S, S, 3) in [-1, 1]
      -> trunk:   conv1 .. convN   each block Conv2D(k) + ReLU + MaxPool(2)
      -> classifier_head: Flatten -> Dense(120) -> Dense(84) -> softmax      => "classifier"
      -> decoder: deconvN .. deconv1  mirrored Conv2DTranspose(stride 2)     => "reconstruction"
                 (by default in sub-pixel form: pad, stride-1 Conv2D giving 4 phases, depth-to-space as
                  Reshape/Permute/Reshape, then bias; standard layers only: keras_latent.model.layers)
         and, with layer decoders, conv{k} -> deconv{k} .. deconv1 for each shallower block k
                                                                            => "reconstruction_conv{k}"

The decoder mirrors the trunk block for block, so the activations of trunk block k
(`conv{k}`, shape (B, h_k, w_k, filters[k-1])) are decoded to an image by the decoder's
last k blocks alone (`decoder_tail`). Trained only on what deconv{k+1} produces, those blocks
would decode the trunk's own conv{k} activations badly (they live in another space); the layer
decoders train deconv{k} .. deconv1 on them too, sharing the same layers inside the decoder
sub-model. No compile, fit or file I/O here.
"""
from __future__ import annotations

import keras

from keras_latent.config import ModelConfig, block_sizes
from keras_latent.errors import UsageError
from keras_latent.model.layers import has_sub_pixel_form, sub_pixel_conv_transpose


def check_trunk_fits(config: ModelConfig) -> list[tuple[int, int]]:
    sizes = block_sizes(config.image_size, len(config.filters), config.kernel_size, config.padding)
    if any(out < 1 for _, out in sizes):
        raise UsageError(
            f"a trunk of {len(config.filters)} blocks (kernel {config.kernel_size}, padding {config.padding}) "
            f"shrinks a {config.image_size}px image to nothing (sizes {[o for _, o in sizes]}); "
            "use --padding same, fewer --filters or a larger --image-size")
    return sizes


def layer_decoder_blocks(config: ModelConfig) -> list[int]:
    """The shallower trunk blocks k (1-based) whose own activations the model decodes ("reconstruction_conv{k}")."""
    return list(range(1, len(config.filters))) if config.decoder and config.layer_decoders else []


def reconstruction_outputs(config: ModelConfig) -> list[str]:
    """Names of the model's reconstruction outputs, each trained against the input image."""
    if not config.decoder:
        return []
    return ["reconstruction"] + [f"reconstruction_conv{k}" for k in layer_decoder_blocks(config)]


def build_trunk(config: ModelConfig) -> keras.Model:
    """Image (B, S, S, 3) -> activations of the last block (with layer decoders: of every block, a list);
    each block is a sub-model `conv{k}`."""
    check_trunk_fits(config)
    image = keras.Input((config.image_size, config.image_size, 3), name="image")
    x, activations = image, []
    for k, width in enumerate(config.filters, start=1):
        block = keras.Sequential([
            keras.layers.Conv2D(width, config.kernel_size, padding=config.padding, activation="relu",
                                name=f"conv{k}_conv"),
            keras.layers.MaxPooling2D(2, name=f"conv{k}_pool"),
        ], name=f"conv{k}")
        x = block(x)
        activations.append(x)
    return keras.Model(image, activations if layer_decoder_blocks(config) else x, name="trunk")


def build_classifier_head(config: ModelConfig, latent_shape: tuple[int, ...]) -> keras.Model:
    """Latent (B, h, w, c) -> class probabilities (B, num_classes)."""
    latent = keras.Input(latent_shape, name="latent")
    x = keras.layers.Flatten(name="flatten")(latent)
    for i, units in enumerate(config.head_units, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"fc{i}")(x)
    probs = keras.layers.Dense(config.num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(latent, probs, name="classifier_head")


def _deconv_block(k: int, in_size: int, out_size: int, channels_in: int, channels_out: int, kernel_size: int,
                  last: bool, sub_pixel: bool) -> keras.Sequential:
    """Mirror of trunk block k: (out_size, out_size, channels_in) -> (in_size, in_size, channels_out), a stride-2
    transposed conv `deconv{k}_conv` (then `deconv{k}_crop` where needed).

    The kernel that exactly inverts the block's size is `in_size - 2 * (out_size - 1)` (6 for the
    tutorial's 5x5 valid convs, as in the PyTorch reference); when that is smaller than the trunk's
    kernel (same padding), a larger kernel is used and the border cropped back symmetrically. With
    `sub_pixel` and an even kernel, the transposed conv is `layers.sub_pixel_conv_transpose` (its
    Conv2D `deconv{k}_conv` holds the phase kernel, `deconv{k}_bias` the bias and the activation);
    otherwise a plain Conv2DTranspose.
    """
    exact = in_size - 2 * (out_size - 1)
    kernel = exact if exact >= kernel_size else exact + 2 * ((kernel_size - exact + 1) // 2)
    crop = (kernel - exact) // 2
    activation = "tanh" if last else "relu"
    if sub_pixel and has_sub_pixel_form((kernel, kernel), 2):
        layers = sub_pixel_conv_transpose(channels_out, kernel, 2, (out_size, out_size, channels_in), activation,
                                          name=f"deconv{k}_conv")
    else:
        layers = [keras.layers.Conv2DTranspose(channels_out, kernel, strides=2, padding="valid",
                                               activation=activation, name=f"deconv{k}_conv")]
    if crop:  # after the activation: both are per pixel, so the order does not matter
        layers.append(keras.layers.Cropping2D(crop, name=f"deconv{k}_crop"))
    return keras.Sequential(layers, name=f"deconv{k}")


def build_decoder(config: ModelConfig) -> keras.Model:
    """Latent of the last block (B, h_N, w_N, filters[-1]) -> image (B, S, S, 3) in [-1, 1].

    Blocks run deconvN .. deconv1; block deconv{k} takes filters[k-1] channels. With layer decoders
    the decoder also takes each shallower block's activations (inputs `conv{k}_activations`) and
    returns a list: the image from the last block, then the image from each conv{k} through
    deconv{k} .. deconv1, the same layers (one sub-model, so saving keeps them shared).
    """
    sizes = check_trunk_fits(config)
    n = len(config.filters)
    blocks = {k: _deconv_block(k, *sizes[k - 1], config.filters[k - 1], config.filters[k - 2] if k > 1 else 3,
                               config.kernel_size, last=(k == 1), sub_pixel=config.sub_pixel_decoder)
              for k in range(n, 0, -1)}

    def tail(x, start: int):
        for k in range(start, 0, -1):
            x = blocks[k](x)
        return x

    latent = keras.Input((sizes[-1][1], sizes[-1][1], config.filters[-1]), name="latent")
    shallower = layer_decoder_blocks(config)
    if not shallower:
        return keras.Model(latent, tail(latent, n), name="decoder")
    inputs = [latent] + [keras.Input((sizes[k - 1][1], sizes[k - 1][1], config.filters[k - 1]),
                                     name=f"conv{k}_activations") for k in shallower]
    outputs = [tail(latent, n)] + [tail(x, k) for x, k in zip(inputs[1:], shallower)]
    return keras.Model(inputs, outputs, name="decoder")


def _float32(name: str, x):
    """An identity layer named `name` in float32: mixed precision keeps float32 outputs."""
    return keras.layers.Activation("linear", dtype="float32", name=name)(x)


def build_model(config: ModelConfig) -> keras.Model:
    """The two-output model: {"classifier": (B, classes) probs, "reconstruction": (B, S, S, 3)}, plus
    "reconstruction_conv{k}" (B, S, S, 3) for each shallower block k when `config.layer_decoders`."""
    trunk = build_trunk(config)
    shallower = layer_decoder_blocks(config)
    head = build_classifier_head(config, tuple(trunk.outputs[-1].shape[1:]))
    image = keras.Input((config.image_size, config.image_size, 3), name="image")
    activations = trunk(image)
    latent = activations[-1] if shallower else activations
    outputs = {"classifier": _float32("classifier", head(latent))}
    if config.decoder:
        decoder = build_decoder(config)
        if shallower:
            decoded = decoder([latent] + [activations[k - 1] for k in shallower])
            names = reconstruction_outputs(config)
            outputs.update({name: _float32(name, x) for name, x in zip(names, decoded)})
        else:
            outputs["reconstruction"] = _float32("reconstruction", decoder(latent))
    return keras.Model(image, outputs, name="keras_latent")


def trunk_block_names(model: keras.Model) -> list[str]:
    """`conv1`, `conv2`, ... of a built model's trunk, in order."""
    return [layer.name for layer in model.get_layer("trunk").layers if layer.name.startswith("conv")]


def trunk_blocks(model: keras.Model) -> list[keras.layers.Layer]:
    """The block sub-models `conv1`, `conv2`, ... of a built model's trunk, in order."""
    trunk = model.get_layer("trunk")
    return [trunk.get_layer(name) for name in trunk_block_names(model)]


def decoded_layers(model: keras.Model) -> list[str]:
    """Trunk blocks whose own activations a built model was trained to decode through the decoder's tail:
    the last block (the main reconstruction) and every block with a "reconstruction_conv{k}" output."""
    if not has_decoder(model):
        return []
    names = trunk_block_names(model)
    return [name for name in names[:-1] if f"reconstruction_{name}" in model.output] + names[-1:]


def has_decoder(model: keras.Model) -> bool:
    """Whether a built model has the decoder, i.e. the "reconstruction" output (not so with --no-decoder)."""
    return "reconstruction" in model.output


def decoder_tail(model: keras.Model, block: int) -> keras.Model:
    """Activations of trunk block `block` (1-based) -> image, through deconv{block} .. deconv1.

    Shares weights with `model`'s decoder; the input shape is that block's output shape.
    """
    decoder = model.get_layer("decoder")
    trunk_block = model.get_layer("trunk").get_layer(f"conv{block}")
    latent = keras.Input(tuple(trunk_block.output.shape[1:]), name=f"conv{block}_activations")
    x = latent
    for k in range(block, 0, -1):
        x = decoder.get_layer(f"deconv{k}")(x)
    return keras.Model(latent, x, name=f"decoder_from_conv{block}")


def tail_decodes(model: keras.Model) -> keras.Model:
    """Image (B, S, S, 3) -> {conv{k}: that block's activations, every channel kept, decoded through
    deconv{k} .. deconv1 (B, S, S, 3)} for every trunk block: the "tail" decode of each layer.

    For the last block this is the model's own reconstruction; for a shallower block it is what
    `decoder_tail` makes of the trunk's real activations. Shares the trained weights.
    """
    image = keras.Input(tuple(model.inputs[0].shape[1:]), name="image")
    x, decoded = image, {}
    for k, block in enumerate(trunk_blocks(model), start=1):
        x = block(x)
        decoded[block.name] = decoder_tail(model, k)(x)
    return keras.Model(image, decoded, name="tail_decodes")


def default_decode_paths(model: keras.Model) -> dict[str, str]:
    """Each layer's decode path when no measurement is at hand (a run from before metrics.json recorded one):
    tail where the decoder was trained on the layer's activations, else propagate (training.faithfulness)."""
    trained = set(decoded_layers(model))
    return {name: "tail" if name in trained else "propagate" for name in trunk_block_names(model)}
def classifier_logits(model: keras.Model, latent):
    """The classifier head's class scores before its softmax: latent (B, h, w, c) -> logits (B, classes).

    Grad-CAM and saliency differentiate these scores, not the probabilities (Selvaraju et al.,
    2017). Runs the head's own layers and its last Dense's kernel and bias, so weights are shared.
    """
    head = model.get_layer("classifier_head")
    *hidden, output = [layer for layer in head.layers if not isinstance(layer, keras.layers.InputLayer)]
    x = latent
    for layer in hidden:
        x = layer(x, training=False)
    return keras.ops.matmul(x, output.kernel) + output.bias
