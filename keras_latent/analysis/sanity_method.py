"""The `sanity` method of `analyze` (issue 23): the controls and sanity checks of every view of a run, written
to RUN/analysis/sanity.json and sanity_{figure}.png.

The checks themselves are model-agnostic (`keras_latent.analysis.sanity`); this module only turns a run
folder into their inputs: the run's model through a `SanityProbe` (obtained in one place,
`sanity_probe_for`), its layers and decode paths, its data (test images to analyse, training images for
the fill colour and the random-trunk decoders), the AnalysisConfig's sizes and the run's seed. Each part is
timed (sanity.json's `timings_s`) and logged.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from keras_latent.analysis.config import AnalysisConfig
from keras_latent.errors import UsageError
from keras_latent.files import save_figure
from keras_latent.runs import layout
from keras_latent.runs.records import write_json

log = logging.getLogger("keras_latent")


def sanity_probe_for(probe, layers: list[str], decode_paths: dict[str, str]):
    """The `SanityProbe` of an analysis probe (`analysis.probe.probe_for(run)`): the one place that knows which
    kind of run gets which sanity probe.

    A run `train` made (`TrainedProbe`): `own_model_probe` along the analysed `layers` and each layer's
    `decode_paths` entry ({} without a decoder: no decoded views). A run with decoders attached to a user's
    model (`AttachedProbe`): `analysis.probe.attached_sanity_probe`. Any other kind is one line.
    """
    from keras_latent.analysis.probe import attached_sanity_probe
    from keras_latent.analysis.sanity import own_model_probe

    kind = getattr(probe, "kind", None)
    if kind == "attached":
        return attached_sanity_probe(probe)
    if kind == "trained":
        return own_model_probe(probe.model, layers, decode_paths or None)
    raise UsageError(f"the sanity checks know runs made by {layout.TRAIN} and by {layout.ATTACH}; "
                     f"got a probe of kind {kind!r}")


def sanity_settings(config: AnalysisConfig, seed: int):
    """SanitySettings from the AnalysisConfig's sanity fields, seeded with the run's seed."""
    from keras_latent.analysis.sanity import SanitySettings, validate_sanity_settings

    return validate_sanity_settings(SanitySettings(
        images=config.sanity_images, accuracy_images=config.sanity_accuracy_images, seed=seed,
        decoder_epochs=config.sanity_decoder_epochs, decoder_images=config.sanity_decoder_images))


def write_sanity(run, probe, layers: list[str], decode_paths: dict[str, str], config: AnalysisConfig, seed: int,
                 out: str) -> dict:
    """Run every sanity check on the run's views and write sanity.json and its figures into folder `out`.

    layers: the analysed trunk layers; decode_paths: {layer: path} the channel grids were decoded along
    ({} without a decoder). Returns sanity.json's content: run_sanity_checks' summary (settings,
    image_indices, cascade_layers, gradcam, smoothgrad, ablation, decode, verdicts, timings_s) plus
    `figures` ({name: analysis/sanity_{name}.png}), `decode_paths`, `layers`, `dataset` and `seconds`
    (wall time of the whole method).
    """
    from keras_latent.analysis.sanity import run_sanity_checks

    start = time.perf_counter()
    settings = sanity_settings(config, seed)
    sanity_probe = sanity_probe_for(probe, layers, decode_paths)
    splits, class_names = run.data.splits, run.data.class_names
    x_test = np.asarray(probe.to_input(splits.x_test), np.float32)  # the model's input range
    x_train = np.asarray(probe.to_input(splits.x_train), np.float32)  # all: the fill colour is the split's mean
    log.info(f"sanity checks: {settings.images} test images, seed {seed}, layers {', '.join(sanity_probe.layers)}")
    summary, figures = run_sanity_checks(sanity_probe, x_test, splits.y_test, x_train,
                                         len(class_names), settings)
    saving_start = time.perf_counter()
    paths = {}
    for name, fig in figures.items():
        save_figure(fig, layout.SANITY_FIGURE.path(out, figure=name))
        paths[name] = layout.analysis_relative(layout.SANITY_FIGURE, figure=name)
    summary["timings_s"]["saving figures"] = round(time.perf_counter() - saving_start, 2)
    summary.update(figures=paths, layers=list(sanity_probe.layers), decode_paths=dict(decode_paths),
                   class_names=list(class_names), dataset=splits.description,
                   seconds=round(time.perf_counter() - start, 2))
    summary["settings"] = {**summary["settings"], "checks": list(summary["settings"]["checks"])}
    write_json(layout.SANITY_SUMMARY.path(out), summary)
    for view in summary["verdicts"].values():
        log.info(f"sanity: {view['line']}")
    log.info(f"sanity checks in {summary['seconds']:.1f} s")
    return summary
