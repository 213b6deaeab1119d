"""Every sanity check of every view, in one call: `run_sanity_checks(probe, ...) -> (summary, figures)`.

A `SanityProbe` is the small interface the checks need from a model, as functions of the model (so that the
same functions run on its randomized copies): an encoder per layer, class probabilities, Grad-CAM,
SmoothGrad, an ablation model, a decoder per layer and a short decoder training. `own_model_probe` builds
it for the models `train` makes; a model with attached decoders (issue 22) builds its own from its graph
interpreter. Everything is seeded from `SanitySettings.seed`; each part is timed and logged.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import keras
import numpy as np

from keras_latent.analysis.sanity import checks, randomize
from keras_latent.analysis.sanity import plots as sanity_plots
from keras_latent.analysis.sanity.similarity import similarities, summarize
from keras_latent.errors import UsageError

log = logging.getLogger("keras_latent")
CHECKS = ("cascade", "random_class", "deletion", "channel_deletion", "trunk", "reencoding")


@dataclasses.dataclass(frozen=True)
class SanitySettings:
    """How much the checks look at; the defaults fit a few minutes on 2 cores for the default model."""

    images: int = 32  # analysed test images (maps, similarities, views, re-encoding)
    accuracy_images: int = 512  # test images for channel rankings: the first half ranks, the second is scored
    seed: int = 0  # image choice, random orders, other classes, re-initialization, SmoothGrad noise
    smoothgrad_samples: int = 16  # noisy copies per image in the checks' SmoothGrad
    deletion_steps: int = 16  # points of each deletion / insertion curve after the first
    random_orders: int = 39  # random channel orders against a ranking (the smallest permutation p is 1/40)
    decoder_epochs: int = 5  # epochs of each decoder trained for the randomized-trunk control
    decoder_images: int = 1024  # training images for those decoders
    threshold: float = checks.THRESHOLD  # tau: the largest mean similarity a changed view may keep (see checks)
    checks: tuple[str, ...] = CHECKS  # which checks to run


def validate_sanity_settings(settings: SanitySettings) -> SanitySettings:
    """Raise UsageError naming the bad setting, what is allowed and what was received."""
    bounds = [("images", settings.images, 2), ("accuracy_images", settings.accuracy_images, 2),
              ("smoothgrad_samples", settings.smoothgrad_samples, 1), ("deletion_steps", settings.deletion_steps, 2),
              ("random_orders", settings.random_orders, 1), ("decoder_epochs", settings.decoder_epochs, 1),
              ("decoder_images", settings.decoder_images, 1), ("seed", settings.seed, 0)]
    for name, value, least in bounds:
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise UsageError(f"sanity setting {name} must be an integer >= {least}, got {value!r}")
    if not 0 < settings.threshold < 1:
        raise UsageError(f"sanity setting threshold must be between 0 and 1 (exclusive), got {settings.threshold!r}")
    unknown = [c for c in settings.checks if c not in CHECKS]
    if unknown or not settings.checks:
        raise UsageError(f"sanity checks must be among {', '.join(CHECKS)}, got {', '.join(settings.checks) or 'none'}")
    return settings


@dataclasses.dataclass(frozen=True)
class SanityProbe:
    """What the checks need from a model; each function takes the model first, so it also runs on copies.

    encoder(model, layer) -> keras.Model image (B, S, S, 3) -> activations (B, h, w, C)
    class_probabilities(model, images (B, S, S, 3)) -> (B, classes)
    classifier_output(model, image tensor) -> the class scores tensor (finds the layers a cascade randomizes)
    grad_cam(model, images, classes, layer) -> (B, h, w); smoothgrad(model, images, classes, samples, seed) ->
    (B, S, S); ablation_model(model, layer) -> [image, masks (B, K, C)] -> probs (B, K, classes);
    decoder(model, layer) -> activations -> image (None: no decoded views);
    fit_decoder(model, layer, epochs) -> fit(encoder, images, seed) -> a fresh decoder trained on that encoder.
    """

    model: keras.Model
    layers: tuple[str, ...]
    encoder: Callable
    class_probabilities: Callable
    classifier_output: Callable
    grad_cam: Callable | None = None
    smoothgrad: Callable | None = None
    ablation_model: Callable | None = None
    decoder: Callable | None = None
    fit_decoder: Callable | None = None


def own_model_probe(model: keras.Model, layers=None, decode_paths: dict[str, str] | None = None) -> SanityProbe:
    """The probe of a model `train` made (trunk blocks conv1.., classifier head, mirrored decoder):
    views decoded along each layer's `decode_paths` entry (default: builders.default_decode_paths),
    random-trunk decoders of the tail architecture (deconv{k} .. deconv1) with fresh weights."""
    from keras_latent.analysis import attribution, latent
    from keras_latent.model import builders

    names = list(layers) if layers else builders.trunk_block_names(model)
    for name in names:
        latent.layer_index(model, name)
    decoded = builders.has_decoder(model)
    paths = decode_paths or (builders.default_decode_paths(model) if decoded else {})

    def fit_decoder(model_, layer, epochs):
        def fit(encoder, images, seed):
            fresh = randomize.randomized_copy(builders.decoder_tail(model_, latent.layer_index(model_, layer)),
                                              None, seed)
            fresh.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
            acts = checks.call(encoder, images)
            keras.utils.set_random_seed(seed)  # the batch shuffling
            fresh.fit(acts, np.asarray(images, np.float32), epochs=epochs, batch_size=64, verbose=0)
            return fresh
        return fit

    return SanityProbe(
        model=model, layers=tuple(names), encoder=latent.encoder,
        class_probabilities=attribution.class_probabilities,
        classifier_output=lambda m, x: m(x)["classifier"],
        grad_cam=lambda m, x, c, layer: attribution.grad_cam(m, x, c, layers=[layer])[layer],
        smoothgrad=lambda m, x, c, samples, seed: attribution.smoothgrad(m, x, c, samples=samples, seed=seed),
        ablation_model=latent.ablation_model,
        decoder=(lambda m, layer: latent.decoder_from(m, layer, paths.get(layer, "tail"))) if decoded else None,
        fit_decoder=fit_decoder if decoded else None)


def _upsample(maps, size: int) -> np.ndarray:
    from keras import ops

    maps = np.asarray(maps, np.float32)
    if maps.shape[1:] == (size, size):
        return maps
    return np.asarray(ops.image.resize(maps[..., None], (size, size), interpolation="bilinear"))[..., 0]


def overall(verdicts: dict[str, str]) -> str:
    """pass when every check passes, fail when one fails, weak otherwise."""
    values = list(verdicts.values())
    return "pass" if all(v == "pass" for v in values) else "fail" if "fail" in values else "weak"


def run_sanity_checks(probe: SanityProbe, test_images, test_labels, train_images, num_classes: int,
                      settings: SanitySettings = SanitySettings()) -> tuple[dict, dict]:
    """Run the chosen checks (settings.checks) on every view the probe has.

    test_images (M, S, S, 3) and train_images (T, S, S, 3): normalized as the model expects;
    test_labels (M,). Returns (summary, figures): summary is JSON-able (layout in docs; see the keys
    below), figures {name: matplotlib Figure} for the caller to save.
    summary: {"settings", "image_indices", "cascade_layers", "gradcam": {layer: {...}}, "smoothgrad": {...},
    "ablation": {layer: {...}}, "decode": {layer: {...}}, "verdicts": {view: {"verdict", "checks", "line"}},
    "timings_s": {part: seconds}}.
    """
    settings = validate_sanity_settings(settings)
    model, seed, tau = probe.model, settings.seed, settings.threshold
    test_images = np.asarray(test_images, np.float32)
    train_images = np.asarray(train_images, np.float32)
    labels = np.asarray(test_labels)
    if len(test_images) < 2 or len(labels) != len(test_images):
        raise UsageError(f"sanity checks need >= 2 test images with one label each, got {len(test_images)} images "
                         f"and {len(labels)} labels")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(test_images), min(settings.images, len(test_images)), replace=False))
    x, size = test_images[chosen], test_images.shape[1]
    accuracy_x = test_images[:settings.accuracy_images]
    accuracy_y = labels[:settings.accuracy_images]
    half = len(accuracy_x) // 2  # rankings from the first half, channel deletion scored on the second (held out)
    rank_x, rank_y, held_x, held_y = accuracy_x[:half], accuracy_y[:half], accuracy_x[half:], accuracy_y[half:]
    classes = probe.class_probabilities(model, x).argmax(-1)  # the trained model's predicted class, fixed
    fill_colour = train_images.mean(axis=(0, 1, 2))  # (3,)
    fill_name = "training mean colour ({})".format(", ".join(f"{v:.3f}" for v in fill_colour))

    def score(images, cls):
        return probe.class_probabilities(model, images)[np.arange(len(images)), cls]

    on = set(settings.checks)
    timings: dict[str, float] = {}
    figures: dict = {}
    summary: dict = {"settings": dataclasses.asdict(settings), "image_indices": [int(i) for i in chosen],
                     "gradcam": {}, "smoothgrad": {}, "ablation": {}, "decode": {}}

    def timed(part: str, fn):
        start = time.perf_counter()
        result = fn()
        timings[part] = round(time.perf_counter() - start, 2)
        log.info("sanity: %s in %.1f s", part, timings[part])
        return result

    layers = randomize.weighted_layers(model, probe.classifier_output, x[:2])
    summary["cascade_layers"] = layers
    views: dict[str, tuple[str, dict, Callable]] = {}  # name -> (kind, where to write, explain)
    if probe.grad_cam:
        for layer in probe.layers:
            summary["gradcam"][layer] = {}
            views[f"gradcam_{layer}"] = ("map", summary["gradcam"][layer],
                                        lambda m, xs, cs, layer=layer: _upsample(probe.grad_cam(m, xs, cs, layer),
                                                                                 size))
    if probe.smoothgrad:
        views["smoothgrad"] = ("map", summary["smoothgrad"],
                               lambda m, xs, cs: probe.smoothgrad(m, xs, cs, settings.smoothgrad_samples, seed))
        if {"cascade", "random_class"} & on:
            other_seed = timed("smoothgrad noise floor", lambda: similarities(
                views["smoothgrad"][2](model, x, classes), probe.smoothgrad(model, x, classes,
                                                                            settings.smoothgrad_samples, seed + 1)))
            summary["smoothgrad"]["seed_similarity"] = {m: summarize(v) for m, v in other_seed.items()}
    if probe.ablation_model:
        for layer in probe.layers:
            summary["ablation"][layer] = {}
            views[f"ablation_{layer}"] = ("channels", summary["ablation"][layer],
                                         lambda m, xs, cs, layer=layer: checks.channel_importance(
                                             probe.ablation_model(m, layer), xs, cs))
    for name, (kind, out, explain) in views.items():
        if "cascade" in on:
            out["cascading"] = timed(f"cascading randomization, {name}", lambda explain=explain: (
                checks.cascading_randomization(model, explain, x, classes, layers, seed, tau)))
            figures[f"cascade_{name}"] = sanity_plots.plot_cascade(
                out["cascading"]["steps"], out["cascading"]["similarity"],
                f"{name}: cascading randomization ({out['cascading']['verdict']})", tau)
        if kind == "map" and "random_class" in on:
            out["random_class"] = timed(f"random class, {name}", lambda explain=explain: checks.random_class_test(
                model, explain, x, classes, num_classes, seed, tau))
        if kind == "map" and "deletion" in on:
            out["deletion_insertion"] = timed(f"deletion and insertion, {name}", lambda explain=explain: (
                checks.deletion_insertion(score, x, classes, explain(model, x, classes), fill_colour, fill_name,
                                          settings.deletion_steps, seed)))
            figures[f"deletion_{name}"] = sanity_plots.plot_deletion_insertion(out["deletion_insertion"], name)

    for layer in probe.layers:
        rankings = {}
        if probe.ablation_model and "channel_deletion" in on:
            ablation = probe.ablation_model(model, layer)
            rankings["ablation"] = timed(f"ablation ranking, {layer}", lambda ablation=ablation: (
                checks.ablation_ranking(ablation, rank_x, rank_y)))
            if probe.decoder:
                rankings["decode"] = timed(f"decode ranking, {layer}", lambda layer=layer, xs=rank_x[:256]: (
                    checks.decode_ranking(probe.decoder(model, layer), checks.call(probe.encoder(model, layer), xs),
                                          xs)))
            results = {name: timed(f"channel deletion, {name} ranking, {layer}",
                                   lambda ablation=ablation, ranking=ranking: checks.channel_deletion(
                                       ablation, held_x, held_y, ranking, settings.random_orders, seed))
                       for name, ranking in rankings.items()}
            summary["ablation"].setdefault(layer, {})["channel_deletion"] = results["ablation"]
            if "decode" in results:
                summary["decode"].setdefault(layer, {})["channel_deletion"] = results["decode"]
            figures[f"channel_deletion_{layer}"] = sanity_plots.plot_channel_deletion(
                results, f"{layer}: channels zeroed in ranked order")
        if probe.decoder is None:
            continue
        decode_out = summary["decode"].setdefault(layer, {})
        encoder, decoder = probe.encoder(model, layer), probe.decoder(model, layer)
        if "trunk" in on and probe.fit_decoder:
            def control(layer=layer, encoder=encoder, decoder=decoder):
                feeding = randomize.weighted_layers(model, lambda m, t: probe.encoder(m, layer)(t), x[:2])
                random_model = randomize.randomized_copy(model, feeding, seed)
                fit = probe.fit_decoder(model, layer, settings.decoder_epochs)
                return checks.randomized_trunk_control(
                    encoder, probe.encoder(random_model, layer), fit, train_images[:settings.decoder_images], x,
                    decoder=decoder, seed=seed, threshold=tau)
            decode_out["randomized_trunk"] = timed(f"randomized-trunk control, {layer}", control)
            figures[f"trunk_control_{layer}"] = sanity_plots.plot_trunk_control(
                decode_out["randomized_trunk"], f"{layer}: trained view vs random-trunk view")
        if "reencoding" in on:
            def reencode(encoder=encoder, decoder=decoder):
                acts = checks.call(encoder, x)
                channel_decodes = checks.single_channel_decodes(decoder, acts, range(acts.shape[-1]))
                return checks.reencoding(encoder, lambda im: probe.class_probabilities(model, im), x,
                                         checks.call(decoder, acts), channel_decodes,
                                         baseline_image=train_images.mean(axis=0))
            decode_out["reencoding"] = timed(f"re-encoding, {layer}", reencode)

    summary["verdicts"] = verdict_table(summary)
    summary["timings_s"] = timings
    log.info("sanity: all checks in %.1f s", sum(timings.values()))
    return summary, figures


def verdict_table(summary: dict) -> dict:
    """{view: {"verdict": overall, "checks": {check: verdict}, "line": one line}} from a summary's results.

    A decoded view (decode_<layer>): the re-encoding verdict, the decode ranking's channel deletion, and the
    randomized-trunk control, which passes when no channel view is flagged "shows the decoder", fails when
    more than half are, and is weak otherwise."""
    table = {}

    def add(view, found):
        found = {k: v for k, v in found.items() if v is not None}
        if found:
            details = ", ".join(f"{k} {v}" for k, v in found.items())
            table[view] = {"verdict": overall(found), "checks": found, "line": f"{view}: {overall(found)} ({details})"}

    def verdict_of(d, key):
        return d.get(key, {}).get("verdict") if isinstance(d.get(key), dict) else None

    for layer, out in summary["gradcam"].items():
        add(f"gradcam_{layer}", {k: verdict_of(out, k) for k in ("cascading", "random_class", "deletion_insertion")})
    add("smoothgrad", {k: verdict_of(summary["smoothgrad"], k)
                       for k in ("cascading", "random_class", "deletion_insertion")})
    for layer, out in summary["ablation"].items():
        add(f"ablation_{layer}", {k: verdict_of(out, k) for k in ("cascading", "channel_deletion")})
    for layer, out in summary["decode"].items():
        trunk = out.get("randomized_trunk")
        trunk_verdict = None
        if trunk:
            flagged, total = len(trunk["flagged"]), len(trunk["channels"])
            trunk_verdict = "pass" if flagged == 0 else "fail" if flagged > total / 2 else "weak"
        add(f"decode_{layer}", {"randomized_trunk": trunk_verdict, "reencoding": verdict_of(out, "reencoding"),
                                "channel_deletion": verdict_of(out, "channel_deletion")})
    return table
