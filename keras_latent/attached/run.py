"""The attach step as one function, and an attached run folder opened through the one `Run` class.

`attach_decoders(config, run_dir)` is the Python API of `python -m keras_latent.attach`: it reads the user's
`.keras` file safely, picks the layers, loads the data set (resized and converted to the model's input size
and channels), trains one decoder per layer on the frozen features, measures their faithfulness on the test
split and writes a run folder in one atomic step (nothing is written when any input is refused):

    config.json          kind "attached": the source model (path, sha256, weights digest, imports), the layers,
                         the image spec, the decoder settings, and under "train" the data recipe (a TrainConfig,
                         so `Run.config` and `Run.data` rebuild the data set exactly as for a trained run)
    source_model.keras   a byte copy of the user's file (checked: same sha256), from which analysis rebuilds the graph
    model.keras          the attached model: image -> {"class_output", layer: decoded image}; plain Keras loads it
    history.csv          decoder training, one row per epoch: loss/<layer> (train MSE), val_loss/<layer> (test), and
                         loss, val_loss: their means over the layers
    metrics.json         kind "attached": faithfulness per layer (MSE, PSNR, normalized error, mean image), the
                         user's model's test accuracy when its class count matches the data's, times

The user's file is hashed before and after and its weights digested after loading and after training: a
difference (which nothing here can cause) is an error, and nothing is written.

`open_any_run(run_dir)` opens either kind: a trained run with the tutorial model's loaders
(`model.saving.open_run`), an attached run with `attached_loaders` (its model.keras, layers, "tail" decode
paths, data converted to the model's input).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time

import numpy as np

from keras_latent.attached.config import AttachConfig, validate_attach
from keras_latent.config import ModelConfig, TrainConfig, to_json_dict
from keras_latent.errors import UsageError
from keras_latent.files import atomic_directory, atomic_write_text
from keras_latent.runs import layout, records
from keras_latent.runs.run import Loaders, Run

log = logging.getLogger("keras_latent")

KIND = records.ATTACHED_KIND  # config.json's "kind" of an attached run
DECODE_PATH = "tail"  # an attached decoder reads its own layer: the only path


def _check_out(run_dir: str, overwrite: bool) -> None:
    """`run_dir` may be written: new, an empty folder, or (with `overwrite`) an attached run folder. Anything else
    is refused before any work, so no folder of the user's is ever replaced by mistake."""
    if not os.path.exists(run_dir) or (os.path.isdir(run_dir) and not os.listdir(run_dir)):
        return
    if not overwrite:
        raise UsageError(f"--out {run_dir!r} exists and is not an empty folder; choose a new run folder, or pass "
                         "--overwrite to replace an attached run")
    if not os.path.isdir(run_dir) or records.read_attached(run_dir) is None:
        raise UsageError(f"--out {run_dir!r} is not an attached run folder; --overwrite replaces only those "
                         "(nothing written)")


def _data_config(config: AttachConfig, spec) -> TrainConfig:
    """The data recipe as a TrainConfig (what `load_splits` and `Run.data` take): images loaded square at the
    larger side, then resized to (H, W) and converted to the model's channels by `prepare_images`."""
    return TrainConfig(data=config.data, model=ModelConfig(image_size=max(spec.height, spec.width), decoder=False,
                                                           layer_decoders=False),
                       epochs=config.epochs, batch_size=config.batch_size, seed=config.seed, calibrate=False)


def _test_accuracy(graph, spec, images_uint8, labels, batch_size: int) -> float:
    """The user's model's accuracy on uint8 images (N, H, W, C) already at its input size."""
    from keras_latent.attached.decoders import _extract
    from keras_latent.attached.graph import CLASS_OUTPUT
    from keras_latent.attached.reading import to_model_input

    outputs = _extract(graph.score_model(), to_model_input(images_uint8, spec), batch_size)
    return float(np.mean(np.argmax(outputs[CLASS_OUTPUT], axis=-1) == np.asarray(labels)))


def attach_decoders(config: AttachConfig, run_dir: str, overwrite: bool = False) -> dict:
    """Attach decoders to the user's model per `config` and write the run folder `run_dir` (see the module doc);
    returns metrics.json's content plus "run_dir". Validates, seeds and logs as the command does.

    `run_dir` must be new or empty; with `overwrite`, an attached run folder there is replaced (its analysis with
    it): the new folder is written beside it and swapped in when complete, so a failure leaves the old one whole."""
    import keras

    from keras_latent.attached.decoders import attached_model, train_decoders
    from keras_latent.attached.faithfulness import measure_faithfulness
    from keras_latent.attached.graph import ModelGraph
    from keras_latent.attached.reading import file_sha256, load_user_model, prepare_images, weights_digest
    from keras_latent.data import load_splits

    validate_attach(config)
    _check_out(run_dir, overwrite)
    start = time.perf_counter()
    user = load_user_model(config.model_path, config.imports)
    graph = ModelGraph(user.model, image_size=config.image_size, class_output=config.class_output,
                       output_kind=None if config.output_kind == "auto" else config.output_kind)
    spec = graph.image_spec(config.input_range)
    layers = graph.resolve(config.layers) if config.layers else graph.default_layers()
    if not layers:
        raise UsageError(f"the model has no layer to decode by default; name some with --layers, one of "
                         f"{', '.join(graph.eligible_layers()) or 'none'}")
    log.info("layers: %s%s", ", ".join(f"{p} {'x'.join(map(str, graph.layers[p].shape))}" for p in layers),
             "" if config.layers else " (defaults: the last layer before each downsampling)")
    splits, resolved = load_splits(_data_config(config, spec))
    x_train, x_test = prepare_images(splits.x_train, spec), prepare_images(splits.x_test, spec)
    log.info("data: %s, as %dx%dx%d images in [%g, %g]", splits.description, *spec.shape, *spec.input_range)
    keras.utils.set_random_seed(config.seed)
    decoders, history = train_decoders(user.model, layers, x_train, x_test, epochs=config.epochs,
                                       batch_size=config.batch_size, seed=config.seed,
                                       channel_dropout=config.channel_dropout, input_range=spec.input_range,
                                       learning_rate=config.learning_rate, graph=graph)
    faithful = measure_faithfulness(graph, decoders, x_train, x_test, spec.input_range, seed=config.seed)
    classes_match = graph.num_classes == len(splits.class_names)
    accuracy = (_test_accuracy(graph, spec, x_test, splits.y_test, config.batch_size) if classes_match else None)
    if weights_digest(user.model) != user.weights_digest or file_sha256(config.model_path) != user.sha256:
        raise UsageError(f"{config.model_path!r} or its weights changed while decoders were attached; nothing written")
    metrics = {"kind": KIND, "faithfulness": faithful, "test_accuracy": accuracy, "classes_match": classes_match,
               "model_classes": graph.num_classes, "dataset": splits.description,
               "train_images": len(x_train), "test_images": len(x_test), "epochs": config.epochs,
               "seconds": round(time.perf_counter() - start, 3), "layers": layers,
               "decoder_seconds": round(float(sum(history["seconds"])), 3)}
    record = {"kind": KIND, "attach": to_json_dict(config),
              "source": {"path": os.path.abspath(config.model_path), "sha256": user.sha256,
                         "weights_digest": user.weights_digest, "imports": list(user.imports)},
              "layers": layers, "layer_shapes": {p: list(graph.layers[p].shape) for p in layers},
              "image": {"height": spec.height, "width": spec.width, "channels": spec.channels,
                        "input_range": list(spec.input_range)},
              "class_output": graph.class_output, "output_kind": graph.output_kind,
              "score_source": graph.score_source, "num_classes": graph.num_classes,
              "decoder": {"epochs": config.epochs, "batch_size": config.batch_size,
                          "learning_rate": config.learning_rate, "channel_dropout": config.channel_dropout,
                          "loss": "pixel MSE on [0, 1] images", "seed": config.seed},
              "train": to_json_dict(resolved)}
    rows = [{"epoch": e, "loss": float(np.mean([history[f"loss/{p}"][i] for p in layers])),
             "val_loss": float(np.mean([history[f"val_loss/{p}"][i] for p in layers])),
             **{k: history[k][i] for k in history if k != "epoch"}} for i, e in enumerate(history["epoch"])]
    model = attached_model(graph, decoders)
    try:
        with atomic_directory(run_dir) as out:
            records.write_json(layout.CONFIG.path(out), record)
            records.write_json(layout.METRICS.path(out), metrics)
            atomic_write_text(layout.HISTORY.path(out), records.history_csv_text(rows))
            shutil.copyfile(config.model_path, layout.SOURCE_MODEL.path(out))
            model.save(layout.MODEL.path(out))
            if file_sha256(layout.SOURCE_MODEL.path(out)) != user.sha256:
                raise UsageError(f"copying {config.model_path!r} into the run folder changed it; nothing written")
    except OSError as err:
        raise UsageError(f"cannot write {run_dir}: {err.strerror or err}") from None
    if file_sha256(config.model_path) != user.sha256:
        raise UsageError(f"{config.model_path!r} changed while decoders were attached")
    log.info("wrote %s (%.1f s)", run_dir, time.perf_counter() - start)
    return {**metrics, "run_dir": run_dir}


# ---------------------------------------------------------------- opening an attached run


def load_attached_model(path: str, imports=()):
    """An attached run's model.keras (or source_model.keras), loaded with safe_mode after importing `imports`."""
    from keras_latent.attached.reading import load_user_model

    return load_user_model(path, imports).model


def _attached_data(record: dict):
    def data(config: TrainConfig):
        from keras_latent.attached.reading import ImageSpec, prepare_images
        from keras_latent.data import load_splits

        image = record["image"]
        spec = ImageSpec(image["height"], image["width"], image["channels"], tuple(image["input_range"]))
        splits, resolved = load_splits(config)
        splits = dataclasses.replace(splits, x_train=prepare_images(splits.x_train, spec),
                                     x_test=prepare_images(splits.x_test, spec))
        return splits, resolved

    return data


def attached_loaders(record: dict) -> Loaders:
    """The `Loaders` of an attached run with config.json `record`: its model.keras (loaded after the run's
    --import modules), its chosen layers, each decoded by its own decoder ("tail"), the data converted to the
    model's input size and channels (uint8)."""
    imports = tuple(record["source"]["imports"])
    layers = list(record["layers"])
    return Loaders(model=lambda path, compile: load_attached_model(path, imports),
                   data=_attached_data(record), layers=lambda model: layers,
                   decode_paths=lambda measured, model: dict.fromkeys(layers, DECODE_PATH))


def attached_parts(run: Run):
    """(graph, decoders, spec) of an opened attached run: the user's graph rebuilt from source_model.keras
    (`ModelGraph`, with the run's image size, class output and output kind), {layer: its decoder} from
    model.keras, and the `ImageSpec` of the images the model takes."""
    from keras_latent.attached.decoders import decoder_name
    from keras_latent.attached.graph import ModelGraph
    from keras_latent.attached.reading import ImageSpec

    record = run.attached
    image = record["image"]
    source = load_attached_model(run.path(layout.SOURCE_MODEL), tuple(record["source"]["imports"]))
    graph = ModelGraph(source, image_size=(image["height"], image["width"]), class_output=record["class_output"],
                       output_kind=record["output_kind"])
    decoders = {layer: run.model.get_layer(decoder_name(layer)) for layer in record["layers"]}
    return graph, decoders, ImageSpec(image["height"], image["width"], image["channels"],
                                      tuple(image["input_range"]))


def open_any_run(run_dir: str, dataset: str | None = None, compile: bool = False) -> Run:
    """The run folder `run_dir` with the loaders of its kind: a trained run's (`model.saving.open_run`) or an
    attached run's (`attached_loaders`)."""
    from keras_latent.model.saving import open_run

    record = records.read_attached(run_dir)
    if record is None:
        return open_run(run_dir, dataset=dataset, compile=compile)
    return Run(run_dir, attached_loaders(record), dataset=dataset, compile=False)
