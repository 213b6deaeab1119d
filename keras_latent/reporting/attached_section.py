"""The report's section on an attached run (decoders attached to a user's own model): where the model came
from (path, sha256, weights digest, the --import modules that ran), the layers and their shapes, the image
spec, the decoder settings and training, and the faithfulness of each layer's all-channels decode on the
test split (MSE, PSNR, Dosovitskiy & Brox's normalized error) against the mean image. Files only."""
from __future__ import annotations

from keras_latent.reporting.assets import fmt
from keras_latent.runs.run import Run


def attached_section(run: Run) -> dict:
    """The template's `attached` dict (config.json and metrics.json of an attached run)."""
    record, metrics = run.attached, run.metrics or {}
    source, image, decoder = record["source"], record["image"], record["decoder"]
    faithful = metrics.get("faithfulness") or {"layers": {}, "mean_image": {}, "no_better_than_mean_image": []}
    flagged = set(faithful.get("no_better_than_mean_image", []))
    rows = [{"layer": layer, "shape": " x ".join(map(str, record["layer_shapes"].get(layer, []))),
             "mse": fmt(f["mse"]), "psnr": fmt(f["psnr"], 1), "normalized": fmt(f["normalized_error_pct"], 1),
             "flagged": layer in flagged} for layer, f in faithful["layers"].items()]
    base = faithful.get("mean_image") or {}
    history = run.history or {}
    final = [{"layer": layer, "train": fmt((history.get(f"loss/{layer}") or [None])[-1]),
              "test": fmt((history.get(f"val_loss/{layer}") or [None])[-1])} for layer in record["layers"]]
    accuracy = metrics.get("test_accuracy")
    settings = [("Model file", source["path"]), ("sha256", source["sha256"]),
                ("Weights digest", source["weights_digest"]),
                ("--import (user code that ran)", ", ".join(source["imports"]) or "none"),
                ("Input", f"{image['height']} x {image['width']} x {image['channels']}, pixel range "
                          f"[{image['input_range'][0]:g}, {image['input_range'][1]:g}]"),
                ("Class output", f"{record['class_output']} ({record['output_kind']}; Grad-CAM and SmoothGrad "
                                 f"differentiate: {record['score_source']})"),
                ("Decoders", f"{decoder['epochs']} epochs, batch {decoder.get('batch_size')}, learning rate "
                             f"{decoder.get('learning_rate')}, channel dropout {decoder['channel_dropout']:g}, "
                             f"{decoder.get('loss', 'pixel MSE')}"),
                ("Your model's test accuracy", "n/a (its class count differs from the data's)" if accuracy is None
                 else f"{100 * accuracy:.1f}% on {metrics.get('test_images')} images")]
    return {"settings": [{"key": k, "value": v} for k, v in settings], "rows": rows,
            "mean_mse": fmt(base.get("mse")), "mean_psnr": fmt(base.get("psnr"), 1),
            "mean_normalized": fmt(base.get("normalized_error_pct"), 1), "history": final,
            "seconds": fmt(metrics.get("seconds"), 1)}
