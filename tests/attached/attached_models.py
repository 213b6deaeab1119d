"""Small user models the attached/ tests build: each a convnet no one on the project wrote, in one of the
shapes real models have (Sequential, functional, nested stem, keras.applications backbone, residual Add,
BatchNorm, Dropout, Rescaling, H != W, grey, softmax or logits, two outputs, a shared layer)."""
import keras
from keras import layers


def sequential_softmax(shape=(32, 32, 3), classes=10) -> keras.Model:
    """Sequential, Rescaling first (raw 0-255 pixels), softmax head."""
    return keras.Sequential([
        keras.Input(shape), layers.Rescaling(1 / 255, name="rescale"),
        layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"), layers.MaxPooling2D(name="pool1"),
        layers.Conv2D(12, 3, padding="same", activation="relu", name="conv2"), layers.MaxPooling2D(name="pool2"),
        layers.GlobalAveragePooling2D(name="gap"), layers.Dense(classes, activation="softmax", name="probs"),
    ], name="seq")


def residual_stem(shape=(32, 32, 3), classes=10, logits=True) -> keras.Model:
    """The issue's bar: raw 0-255 inputs, a nested Sequential stem (Rescaling, conv, BatchNorm), a residual
    Add whose skip branch is the stem's output, BatchNorm, Dropout, logits (or a softmax)."""
    stem = keras.Sequential([
        keras.Input(shape), layers.Rescaling(1 / 127.5, offset=-1, name="rescale"),
        layers.Conv2D(8, 3, padding="same", name="conv1"), layers.BatchNormalization(name="bn1"),
        layers.ReLU(name="relu1"),
    ], name="stem")
    image = keras.Input(shape, name="pixels")
    x = stem(image)
    y = layers.Conv2D(8, 3, padding="same", activation="relu", name="res_conv")(x)
    y = layers.BatchNormalization(name="res_bn")(y)
    x = layers.ReLU(name="res_relu")(layers.Add(name="res_add")([x, y]))
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="down")(x)
    x = layers.Dropout(0.5, name="drop")(layers.GlobalAveragePooling2D(name="gap")(x))
    out = layers.Dense(classes, activation=None if logits else "softmax", name="logits" if logits else "probs")(x)
    return keras.Model(image, out, name="user_net")


def applications_backbone(shape=(32, 32, 3), classes=10) -> keras.Model:
    """A keras.applications MobileNetV2 (weights=None, alpha 0.35) inside a classifier with a softmax."""
    backbone = keras.applications.MobileNetV2(input_shape=shape, alpha=0.35, include_top=False, weights=None)
    image = keras.Input(shape, name="image")
    x = layers.GlobalAveragePooling2D(name="gap")(backbone(image))
    return keras.Model(image, layers.Dense(classes, activation="softmax", name="probs")(x), name="classifier")


def two_outputs(shape=(24, 40, 1), classes=4) -> keras.Model:
    """Grey, H != W, two outputs (an auxiliary regression and the classes), a layer shared by two calls."""
    image = keras.Input(shape, name="image")
    x = layers.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(image)
    shared = layers.Conv2D(6, 3, padding="same", activation="relu", name="shared")
    x = shared(shared(x))
    x = layers.MaxPooling2D(name="pool")(x)
    x = layers.Conv2D(10, 3, padding="same", activation="relu", name="conv2")(x)
    pooled = layers.GlobalAveragePooling2D(name="gap")(x)
    aux = layers.Dense(2, name="aux")(pooled)
    probs = layers.Activation("softmax", name="probs")(layers.Dense(classes, name="dense")(pooled))
    return keras.Model(image, [aux, probs], name="two_heads")


def functional_block(shape=(32, 32, 3), classes=10) -> keras.Model:
    """A nested functional block (two convs and an Add inside it) between plain layers."""
    inner_in = keras.Input((16, 16, 8))
    a = layers.Conv2D(8, 3, padding="same", activation="relu", name="a")(inner_in)
    b = layers.Conv2D(8, 1, name="b")(a)
    block = keras.Model(inner_in, layers.Add(name="sum")([inner_in, b]), name="block")
    image = keras.Input(shape)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="entry")(image)
    x = block(x)
    x = layers.Conv2D(12, 3, strides=2, padding="same", activation="relu", name="exit")(x)
    x = layers.Flatten(name="flat")(x)
    return keras.Model(image, layers.Dense(classes, name="logits")(x), name="with_block")
