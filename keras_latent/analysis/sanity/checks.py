"""The sanity checks: does a view depend on the trained weights, and does it say what the model uses?

Model-agnostic: every check takes Keras models or callables and numpy arrays (never a run folder):

    explain(model, images, classes) -> maps (N, ...)          a view of the classifier (Grad-CAM, SmoothGrad,
                                                              a per-image channel importance (N, C))
    encoder: image (N, S, S, 3) -> activations (N, h, w, C)    a keras.Model (or callable)
    decoder: activations -> image (N, S, S, 3)
    ablation_model: [image (B, S, S, 3), masks (B, K, C)] -> class probabilities (B, K, classes)
    fit_decoder(encoder, images, seed) -> decoder              a short, seeded decoder training

Each check returns a plain JSON-able dict: the numbers, a "verdict" string and the "rule" (the test or
interval) behind it. Similarities are per image (`similarity`), their spread is `similarity.summarize`
(mean, sd, 95% t interval of the mean, 2.5-97.5 percentiles of the values).

Verdict rules (confidence 95%, keras_latent.stats.CONFIDENCE; threshold tau = 0.5 by default):
- `dependence_verdict` (cascading randomization, random-class test): the per-image similarity s_i of the
  trained map to the changed map (randomized model, other class), Spearman of absolute values. pass: s is
  significantly below the trained map's similarity to itself (1; one-sided one-sample t-test of 1 - s_i > 0,
  p < 0.05) AND the upper 95% bound of mean s is below tau (the change is material, not just detectable).
  weak: significant, but the upper bound is >= tau. fail: not significant.
- deletion/insertion (Petsiuk et al. 2018, RISE): per-image area under the class-probability curve,
  paired one-sided t-tests against a random ranking: deletion AUC lower, insertion AUC higher.
  pass: both significant; weak: one; fail: neither. Also tested against a centre prior (reported).
- channel deletion: accuracy AUC as channels are zeroed in ranked order against `random_orders` random
  orders; permutation p = (1 + #random AUC <= ranked AUC) / (1 + orders). pass: p < 0.05.
- randomized-trunk control, per channel: the pixel rank correlation r_i of the trained view with the
  random-trunk view. "shows the decoder" (flagged) when the lower 95% bound of mean r is >= tau, "shows the
  channel" when the upper bound is < tau, else "unclear".
- re-encoding: relative feature error of the decode, paired one-sided t-test against the mean image's
  (pass: lower); same-class rate and "channel k lights up" rate, one-sided binomial tests against their
  chance rates (the mean image's same-class rate; 1 / channels).
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import keras
import numpy as np

from keras_latent import stats
from keras_latent.analysis.sanity import randomize
from keras_latent.analysis.sanity.similarity import similarities, spearman, ssim, summarize
from keras_latent.errors import UsageError

log = logging.getLogger("keras_latent")
ALPHA = 1 - stats.CONFIDENCE
THRESHOLD = 0.5  # tau: the largest mean similarity a changed view may keep and still "differ"
DECIDING_MEASURE = "spearman_abs"
BATCH = 256


def call(fn, inputs) -> np.ndarray:
    """A keras.Model (chunks of BATCH rows) or any callable on numpy inputs -> float32 numpy."""
    if isinstance(fn, keras.Model):
        from keras_latent.analysis.latent import predict_in_chunks

        return predict_in_chunks(fn, inputs if isinstance(inputs, list) else [inputs], BATCH)
    return np.asarray(fn(inputs), np.float32)


def _round(values, digits: int = 5) -> list:
    return [None if not np.isfinite(v) else round(float(v), digits) for v in np.asarray(values, np.float64).ravel()]


def one_sided_t(differences) -> float | None:
    """p-value of the one-sided t-test that the mean of `differences` (N,) is > 0 (None for N < 2); when
    every difference is the same number: 0 if it is > 0, else 1."""
    from scipy.stats import ttest_1samp

    d = np.asarray(differences, np.float64)
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return None
    if np.ptp(d) <= 1e-12 * max(1.0, abs(d[0])):
        return 0.0 if d[0] > 1e-12 else 1.0
    return float(ttest_1samp(d, 0.0, alternative="greater").pvalue)


def dependence_verdict(similarity, threshold: float = THRESHOLD) -> dict:
    """The verdict on per-image similarities (N,) of a trained view to a changed one (module doc)."""
    s = np.asarray(similarity, np.float64)
    spread = summarize(s)
    p = one_sided_t(1.0 - s)
    significant = p is not None and p < ALPHA
    material = spread["ci_high"] is not None and spread["ci_high"] < threshold
    verdict = "pass" if significant and material else "weak" if significant else "fail"
    return {"verdict": verdict, "p_value": p, "threshold": threshold, "tested_similarity": spread,
            "rule": f"pass: mean similarity significantly below 1 (one-sided t-test, p < {ALPHA:.2f}) and its "
                    f"upper {stats.CONFIDENCE:.0%} bound < {threshold}; weak: significant only; fail: not significant"}


# ---------------------------------------------------------------- cascading randomization and random class


def cascading_randomization(model: keras.Model, explain: Callable, images, classes, layers: list[str],
                            seed: int = 0, threshold: float = THRESHOLD) -> dict:
    """Adebayo et al.'s cascading randomization of one view.

    layers: paths of the layers to randomize (`randomize.weighted_layers`, topological order); they are
    re-initialized from the top one down, one more per step, on a copy (`randomize.cascade`). After each
    step the view of the same images and classes is compared with the trained model's, per image.
    Returns {"steps": ["trained", path, ...], "similarity": {measure: [summary per step]}, "per_image":
    {measure: [[per image] per step]}, "verdict": dependence_verdict of the last step (all layers
    randomized) on DECIDING_MEASURE, plus "measure"}.
    """
    classes = np.asarray(classes)
    trained = np.asarray(explain(model, images, classes), np.float64)
    per_step = [similarities(trained, trained)]
    steps = ["trained"]
    for path, copy in randomize.cascade(model, layers, seed):
        per_step.append(similarities(trained, np.asarray(explain(copy, images, classes), np.float64)))
        steps.append(path)
    measures = list(per_step[0])
    final = per_step[-1][DECIDING_MEASURE]
    return {"steps": steps, "measure": DECIDING_MEASURE,
            "similarity": {m: [summarize(s[m]) for s in per_step] for m in measures},
            "per_image": {m: [_round(s[m]) for s in per_step] for m in measures},
            **dependence_verdict(final, threshold)}


def other_classes(classes, num_classes: int, seed: int = 0) -> np.ndarray:
    """For each class (N,) a different one drawn uniformly from the others (seeded): (N,) int."""
    if num_classes < 2:
        raise UsageError(f"the random-class test needs at least 2 classes, got {num_classes}")
    rng = np.random.default_rng(seed)
    return (np.asarray(classes) + rng.integers(1, num_classes, len(classes))) % num_classes


def random_class_test(model: keras.Model, explain: Callable, images, classes, num_classes: int, seed: int = 0,
                      threshold: float = THRESHOLD) -> dict:
    """The map of each image's class against the map of a random other class (`other_classes`), per image.
    Returns {"similarity": {measure: summary}, "per_image": {...}, "other_classes": [...], verdict ...}."""
    classes = np.asarray(classes)
    others = other_classes(classes, num_classes, seed)
    sims = similarities(explain(model, images, classes), explain(model, images, others))
    return {"measure": DECIDING_MEASURE, "similarity": {m: summarize(v) for m, v in sims.items()},
            "per_image": {m: _round(v) for m, v in sims.items()}, "other_classes": [int(c) for c in others],
            **dependence_verdict(sims[DECIDING_MEASURE], threshold)}


# ---------------------------------------------------------------- deletion and insertion


def pixel_orders(maps, seed: int = 0) -> dict[str, np.ndarray]:
    """Pixel orders (N, h*w), first = removed/inserted first: "map" (strongest |value| first; ties in pixel
    order), "random" (a seeded permutation per image) and "centre" (nearest the image centre first)."""
    maps = np.abs(np.asarray(maps, np.float64))
    n, h, w = maps.shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    distance = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2).ravel()
    return {"map": np.argsort(-maps.reshape(n, -1), axis=1, kind="stable"),
            "random": np.stack([rng.permutation(h * w) for _ in range(n)]),
            "centre": np.tile(np.argsort(distance, kind="stable"), (n, 1))}


def area_under(curves) -> np.ndarray:
    """Area under curves (N, T) sampled at T evenly spaced fractions of 0..1 (trapezoid rule): (N,)."""
    curves = np.asarray(curves, np.float64)
    return (curves[:, 1:] + curves[:, :-1]).sum(axis=1) / (2 * (curves.shape[1] - 1))


def _curve_summary(curves) -> dict:
    curves = np.asarray(curves, np.float64)
    return {"per_step": [summarize(curves[:, t]) for t in range(curves.shape[1])], "auc": summarize(area_under(curves))}


def deletion_insertion(score_fn: Callable, images, classes, maps, fill, fill_name: str, steps: int = 16,
                       seed: int = 0) -> dict:
    """Pixel deletion and insertion (Petsiuk, Das & Saenko, "RISE", BMVC 2018) for one map per image.

    score_fn(images (B, S, S, 3), classes (B,)) -> (B,) class probability. maps (N, S, S) at image size;
    fill broadcastable to images (N, S, S, 3) (the data set's mean colour, or a blurred image): deletion
    replaces pixels (all colours) by the fill in ranked order, insertion starts from the fill and puts the
    image's pixels back in ranked order, `steps` + 1 points from 0 to all pixels. Rankings: the map, a
    random order and a centre prior (`pixel_orders`). Returns {"fill", "fractions", "deletion":
    {ranking: curve summary}, "insertion": {...}, "tests": {...}, "verdict", "rule"}.
    """
    images = np.asarray(images, np.float32)
    n, h, w, c = images.shape
    if np.shape(maps) != (n, h, w):
        raise UsageError(f"deletion needs maps at image size {(n, h, w)}, got {np.shape(maps)}")
    classes = np.asarray(classes)
    fill = np.broadcast_to(np.asarray(fill, np.float32), images.shape)
    fractions = np.linspace(0, 1, steps + 1)
    counts = np.round(fractions * h * w).astype(int)
    orders = pixel_orders(maps, seed)
    results, aucs = {"deletion": {}, "insertion": {}}, {"deletion": {}, "insertion": {}}
    for ranking, order in orders.items():
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(h * w)[None], axis=1)  # rank[i, pixel] = its position
        taken = rank.reshape(n, 1, h, w, 1) < counts.reshape(1, -1, 1, 1, 1)  # (N, T, h, w, 1)
        for kind in ("deletion", "insertion"):
            first, second = (fill, images) if kind == "deletion" else (images, fill)
            batch = np.where(taken, first[:, None], second[:, None]).reshape(-1, h, w, c)
            curves = np.asarray(score_fn(batch, np.repeat(classes, len(counts))), np.float64).reshape(n, -1)
            results[kind][ranking] = _curve_summary(curves)
            aucs[kind][ranking] = area_under(curves)
    tests = {}
    for kind, sign in (("deletion", -1), ("insertion", 1)):  # deletion: lower is better; insertion: higher
        for other in ("random", "centre"):
            diff = sign * (aucs[kind]["map"] - aucs[kind][other])
            tests[f"{kind}_vs_{other}"] = {"better_by": summarize(diff), "p_value": one_sided_t(diff)}
    wins = [tests[f"{k}_vs_random"]["p_value"] is not None and tests[f"{k}_vs_random"]["p_value"] < ALPHA
            for k in ("deletion", "insertion")]
    beats_centre = {k: tests[f"{k}_vs_centre"]["p_value"] is not None and tests[f"{k}_vs_centre"]["p_value"] < ALPHA
                    for k in ("deletion", "insertion")}
    return {"fill": fill_name, "fractions": _round(fractions, 4), **results, "tests": tests,
            "beats_centre_prior": beats_centre, "verdict": ["fail", "weak", "pass"][sum(wins)],
            "rule": f"per-image AUC against a random ranking, one-sided paired t-tests (p < {ALPHA:.2f}): "
                    "pass: deletion AUC lower and insertion AUC higher; weak: one of them; fail: neither"}


def channel_importance(ablation_model, images, classes) -> np.ndarray:
    """Per image, how much each channel holds up its class: probability of classes[i] intact minus with
    channel k zeroed, (N, C) float32 (one ablation call, mask rows: intact, then each channel dropped)."""
    from keras_latent.analysis.latent import predict_masked

    n_channels = int(ablation_model.inputs[1].shape[-1])
    masks = np.concatenate([np.ones((1, n_channels)), 1 - np.eye(n_channels)]).astype(np.float32)
    probs = predict_masked(ablation_model, images, masks)  # (N, 1 + C, classes)
    picked = probs[np.arange(len(probs)), :, np.asarray(classes)]  # (N, 1 + C)
    return picked[:, :1] - picked[:, 1:]


def ablation_ranking(ablation_model, images, labels) -> np.ndarray:
    """Channels by the test accuracy lost when each is zeroed alone, most first (ties: lower index): (C,)."""
    from keras_latent.analysis.latent import predict_masked

    n_channels = int(ablation_model.inputs[1].shape[-1])
    masks = np.concatenate([np.ones((1, n_channels)), 1 - np.eye(n_channels)]).astype(np.float32)
    correct = predict_masked(ablation_model, images, masks).argmax(-1) == np.asarray(labels)[:, None]
    drop = correct[:, 0].mean() - correct[:, 1:].mean(axis=0)
    return np.lexsort((np.arange(n_channels), -drop))


def decode_ranking(decoder, activations, images) -> np.ndarray:
    """Channels by how much the all-channels decode worsens (MSE to the image) when each is zeroed alone,
    most first: what the decoder says each channel carries. activations (N, h, w, C), images (N, S, S, 3)."""
    activations, images = np.asarray(activations, np.float32), np.asarray(images, np.float64)
    n_channels = activations.shape[-1]
    base = np.mean((call(decoder, activations) - images) ** 2)
    increase = np.empty(n_channels)
    for k in range(n_channels):
        dropped = activations.copy()
        dropped[..., k] = 0
        increase[k] = np.mean((call(decoder, dropped) - images) ** 2) - base
    return np.lexsort((np.arange(n_channels), -increase))


def cumulative_masks(order, n_channels: int) -> np.ndarray:
    """(C + 1, C) float32: row j zeroes the first j channels of `order`."""
    masks = np.ones((n_channels + 1, n_channels), np.float32)
    for j, channel in enumerate(order, start=1):
        masks[j:, channel] = 0
    return masks


def channel_deletion(ablation_model, images, labels, ranking, random_orders: int = 20, seed: int = 0) -> dict:
    """Accuracy as channels are zeroed in `ranking` order (C,) against `random_orders` random orders (seeded).

    Returns {"fractions", "ranked": {"accuracy": [C + 1], "auc"}, "random": {"accuracy_mean", "p2_5",
    "p97_5" (per step), "auc": summary}, "p_value" (permutation, module doc), "verdict", "rule"}.
    """
    from keras_latent.analysis.latent import predict_masked

    if random_orders < 1:
        raise UsageError(f"channel deletion needs random_orders >= 1, got {random_orders}")
    n_channels = int(ablation_model.inputs[1].shape[-1])
    ranking = np.asarray(ranking)
    if sorted(ranking.tolist()) != list(range(n_channels)):
        raise UsageError(f"a channel ranking must order all {n_channels} channels once, got {ranking.tolist()}")
    rng = np.random.default_rng(seed)
    orders = [ranking] + [rng.permutation(n_channels) for _ in range(random_orders)]
    masks = np.concatenate([cumulative_masks(o, n_channels) for o in orders])
    predicted = predict_masked(ablation_model, images, masks).argmax(-1)  # (N, (1 + R) (C + 1))
    accuracy = (predicted == np.asarray(labels)[:, None]).mean(axis=0).reshape(len(orders), n_channels + 1)
    auc = area_under(accuracy)
    p = float((1 + np.sum(auc[1:] <= auc[0])) / (1 + random_orders))
    return {"fractions": _round(np.linspace(0, 1, n_channels + 1), 4), "ranking": [int(c) for c in ranking],
            "ranked": {"accuracy": _round(accuracy[0]), "auc": float(auc[0])},
            "random": {"accuracy_mean": _round(accuracy[1:].mean(axis=0)),
                       "p2_5": _round(np.percentile(accuracy[1:], 2.5, axis=0)),
                       "p97_5": _round(np.percentile(accuracy[1:], 97.5, axis=0)), "auc": summarize(auc[1:])},
            "p_value": p, "verdict": "pass" if p < ALPHA else "fail", "images": int(len(images)),
            "rule": f"pass: the ranked order's accuracy AUC is below the random orders' (permutation p = "
                    f"(1 + #random AUC <= ranked) / (1 + {random_orders}) < {ALPHA:.2f})"}


# ---------------------------------------------------------------- decoded channels


def single_channel_decodes(decoder, activations, channels) -> np.ndarray:
    """Decode each image with only channel k kept: activations (N, h, w, C) -> (N, K, S, S, 3)."""
    activations = np.asarray(activations, np.float32)
    out = []
    for k in channels:
        kept = np.zeros_like(activations)
        kept[..., k] = activations[..., k]
        out.append(call(decoder, kept))
    return np.stack(out, axis=1)


def randomized_trunk_control(encoder, random_encoder, fit_decoder: Callable, train_images, images,
                             channels=None, decoder=None, seed: int = 0, threshold: float = THRESHOLD) -> dict:
    """Is a decoded channel view the channel's or the decoder's work? (He, Wang & Hopcroft, NeurIPS 2016).

    fit_decoder(encoder, train_images, seed) trains the same decoder (short, seeded) on the trained trunk
    (`encoder`) and on a re-initialized one (`random_encoder`, e.g. the encoder of `randomize.randomized_copy`).
    - all channels: per-image MSE of each decode of `images`, and their paired difference (t-test);
    - per channel k: the view the analysis shows (decoder, default: the one fitted on the trained trunk) with
      only channel k kept, against the random-trunk decoder's view of the random trunk's channel k: pixel
      rank correlation (deciding) and SSIM (data range 2), per image, and the verdict (module doc).
    With `decoder` given (the model's own, trained longer than `fit_decoder` trains), each channel also gets
    "matched_rank_correlation": the view of the decoder fitted on the trained trunk with the same short recipe
    against the random-trunk view, which separates the trunk's part from the decoder's training (reported, not
    deciding: the verdict is about the views shown).
    Returns {"mse": {"trained": summary, "random": summary, "model_decoder": summary | None,
    "random_minus_trained": paired difference}, "channels": [{"channel", "rank_correlation", "ssim",
    "verdict", "matched_rank_correlation"}], "flagged": [channels], "verdict", "rule"}.
    """
    images = np.asarray(images, np.float32)
    trained_fit = fit_decoder(encoder, train_images, seed)
    random_fit = fit_decoder(random_encoder, train_images, seed)
    acts, random_acts = call(encoder, images), call(random_encoder, images)

    def mse(dec, a):
        return np.mean((call(dec, a).astype(np.float64) - images) ** 2, axis=(1, 2, 3))

    trained_mse, random_mse = mse(trained_fit, acts), mse(random_fit, random_acts)
    channels = list(range(acts.shape[-1])) if channels is None else [int(c) for c in channels]
    shown = single_channel_decodes(decoder or trained_fit, acts, channels)
    control = single_channel_decodes(random_fit, random_acts, channels)
    matched = single_channel_decodes(trained_fit, acts, channels) if decoder is not None else None
    rows, flagged = [], []
    for j, k in enumerate(channels):
        r = spearman(shown[:, j], control[:, j], absolute=False)
        low, high = (summarize(r)[b] for b in ("ci_low", "ci_high"))
        verdict = ("shows the decoder" if low is not None and low >= threshold else
                   "shows the channel" if high is not None and high < threshold else "unclear")
        flagged += [k] if verdict == "shows the decoder" else []
        rows.append({"channel": k, "rank_correlation": summarize(r),
                     "ssim": summarize(ssim(shown[:, j], control[:, j], data_range=2.0)), "verdict": verdict,
                     "matched_rank_correlation": None if matched is None else summarize(
                         spearman(matched[:, j], control[:, j], absolute=False))})
    return {"mse": {"trained": summarize(trained_mse), "random": summarize(random_mse),
                    "model_decoder": summarize(mse(decoder, acts)) if decoder is not None else None,
                    "random_minus_trained": stats.paired_difference(random_mse, trained_mse)},
            "channels": rows, "flagged": flagged, "threshold": threshold,
            "verdict": f"{len(flagged)} of {len(channels)} channel views flagged as showing the decoder",
            "rule": f"per channel, pixel rank correlation of the trained view with the random-trunk view: "
                    f"'shows the decoder' if its lower {stats.CONFIDENCE:.0%} bound >= {threshold}, "
                    f"'shows the channel' if the upper bound < {threshold}, else 'unclear'"}


def reencoding(encoder, classify, images, decoded, channel_decodes=None, channels=None, baseline_image=None) -> dict:
    """Run decodes back through the model (Mahendran & Vedaldi, CVPR 2015, for the feature error).

    encoder: image -> activations (N, h, w, C) of the decoded layer; classify: image -> class probabilities;
    images (N, S, S, 3); decoded (N, S, S, 3): the all-channels decode of each image; channel_decodes
    (N, K, S, S, 3): with only channels[j] kept; baseline_image (S, S, 3): the mean image, the reference a
    decode must beat (default: the mean of `images`). "Channel k lights up": re-encode the decode with only
    channel k kept, take each channel's spatial mean as a z-score against that channel's spatial means on the
    real `images` (sd floored at 0.1 x the layer's median sd, for dead channels), and rank k among the channels.
    Returns {"feature_error": {"decode", "mean_image": summary, "test"}, "same_class": {...},
    "channel_lights_up": {...} | None, "verdict", "rule"}.
    """
    from scipy.stats import binomtest

    images = np.asarray(images, np.float32)
    baseline_image = images.mean(axis=0) if baseline_image is None else np.asarray(baseline_image, np.float32)
    phi = call(encoder, images).astype(np.float64)
    norm = np.sqrt((phi ** 2).reshape(len(phi), -1).sum(axis=1))

    def feature_error(x):
        diff = (call(encoder, np.asarray(x, np.float32)).astype(np.float64) - phi).reshape(len(phi), -1)
        return np.sqrt((diff ** 2).sum(axis=1)) / np.maximum(norm, 1e-12)

    decode_error = feature_error(decoded)
    baseline_error = feature_error(np.broadcast_to(baseline_image, images.shape))
    p_feature = one_sided_t(baseline_error - decode_error)
    predicted = call(classify, images).argmax(-1)
    same = call(classify, np.asarray(decoded, np.float32)).argmax(-1) == predicted
    chance = float(np.mean(predicted == call(classify, baseline_image[None]).argmax(-1)[0]))
    p_class = float(binomtest(int(same.sum()), len(same), min(max(chance, 1e-9), 1 - 1e-9), "greater").pvalue)
    result = {"feature_error": {"decode": summarize(decode_error), "mean_image": summarize(baseline_error),
                                "p_value": p_feature},
              "same_class": {"rate": float(same.mean()), "n": int(len(same)), "chance": chance, "p_value": p_class},
              "channel_lights_up": None}
    verdict = p_feature is not None and p_feature < ALPHA and p_class < ALPHA
    if channel_decodes is not None:
        n, k = np.shape(channel_decodes)[:2]
        channels = list(range(k)) if channels is None else [int(c) for c in channels]
        real = phi.mean(axis=(1, 2))  # (N, C) each channel's spatial mean on the real images
        spread = real.std(axis=0)
        spread = np.maximum(spread, 0.1 * np.median(spread) + 1e-12)  # floor: a (nearly) dead channel
        flat = np.asarray(channel_decodes, np.float32).reshape(n * k, *images.shape[1:])
        decoded_means = call(encoder, flat).astype(np.float64).mean(axis=(1, 2)).reshape(n, k, -1)
        means = (decoded_means - real.mean(axis=0)) / spread  # (N, K, C) z-scores against the real images
        ranks = np.array([[int(np.sum(means[i, j] > means[i, j, c])) for j, c in enumerate(channels)]
                          for i in range(n)])  # (N, K): 0 = channel k lights up most
        n_channels = means.shape[-1]
        hits = ranks == 0
        p_hit = float(binomtest(int(hits.sum()), hits.size, 1 / n_channels, "greater").pvalue)
        result["channel_lights_up"] = {"rate": float(hits.mean()), "chance": 1 / n_channels, "p_value": p_hit,
                                       "mean_rank": summarize(ranks.mean(axis=1)),
                                       "chance_mean_rank": (n_channels - 1) / 2,
                                       "per_channel": {str(c): float(hits[:, j].mean())
                                                       for j, c in enumerate(channels)}}
        verdict = verdict and p_hit < ALPHA
    result.update(verdict="pass" if verdict else "fail",
                  rule=f"pass: feature error below the mean image's (one-sided paired t-test), same-class rate above "
                       f"the mean image's and, for single-channel decodes, channel k the most active above chance "
                       f"1/C (one-sided binomial tests), each p < {ALPHA:.2f}")
    return result
