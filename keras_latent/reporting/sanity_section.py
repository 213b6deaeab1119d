"""Report section 6: can these views be trusted? Read from RUN/analysis/sanity.json and its figures only, as
`python -m keras_latent.analyze RUN --methods ...,sanity` writes them (keras_latent.analysis.sanity_method).

One row per view (decoded channels per layer, Grad-CAM per layer, SmoothGrad, ablation ranking per layer):
its verdict and, per check, the verdict with the numbers behind it (similarity after full randomization
with its 95% interval and p-value, deletion / insertion AUCs against a random ranking and a centre prior with
the fill named, channel-deletion permutation p, randomized-trunk flags, re-encoding figures); then the
figures of each view, a per-channel table of each decoded layer, and the timings.
"""
from __future__ import annotations

import os

from keras_latent.reporting.assets import command, figure, note
from keras_latent.runs import layout
from keras_latent.runs.records import read_json
from keras_latent.runs.run import Run

CHECK_NAMES = {"cascading": "cascading randomization", "random_class": "random class",
               "deletion_insertion": "deletion / insertion", "channel_deletion": "channel deletion",
               "randomized_trunk": "randomized trunk", "reencoding": "re-encoding"}


def sanity_command(run_dir: str) -> str:
    return command(*layout.ANALYZE.split(), run_dir, "--methods", layout.SANITY_METHODS)


def view_title(view: str) -> str:
    """gradcam_conv1 -> "Grad-CAM at conv1", smoothgrad -> "SmoothGrad", ablation_conv2 -> "Ablation ranking
    at conv2", decode_conv1 -> "Decoded channels of conv1"."""
    kind, _, layer = view.partition("_")
    return {"gradcam": f"Grad-CAM at {layer}", "smoothgrad": "SmoothGrad", "ablation": f"Ablation ranking at {layer}",
            "decode": f"Decoded channels of {layer}"}.get(kind, view)


def p_text(p) -> str:
    if p is None:
        return "p n/a"
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.2g}"


def interval(spread: dict, digits: int = 2) -> str:
    """mean [95% CI low, high] of a similarity.summarize spread."""
    if spread.get("mean") is None:
        return "n/a"
    if spread.get("ci_low") is None:
        return f"{spread['mean']:.{digits}f}"
    return f"{spread['mean']:.{digits}f} [{spread['ci_low']:.{digits}f}, {spread['ci_high']:.{digits}f}]"


def _rate(value) -> str:
    return f"{100 * value:.0f}%"


def evidence(check: str, result: dict, view: str) -> str:
    """The numbers behind one check's verdict, in one sentence."""
    if check == "cascading":
        layers = len(result["steps"]) - 1
        return (f"Spearman |map| to the trained {'ranking' if view.startswith('ablation') else 'map'} after all "
                f"{layers} weighted layers are re-initialized (top down): {interval(result['tested_similarity'])} "
                f"(95% CI; must be significantly below 1 and below {result['threshold']}), "
                f"{p_text(result['p_value'])} (one-sided t-test)")
    if check == "random_class":
        return (f"Spearman |map| between the predicted class's map and a random other class's: "
                f"{interval(result['tested_similarity'])}, {p_text(result['p_value'])}")
    if check == "deletion_insertion":
        parts = []
        for kind in ("deletion", "insertion"):
            auc = {r: result[kind][r]["auc"]["mean"] for r in result[kind]}
            tests = result["tests"]
            parts.append(f"{kind} AUC {auc['map']:.3f} vs random ranking {auc['random']:.3f} "
                         f"({p_text(tests[f'{kind}_vs_random']['p_value'])}) and centre prior {auc['centre']:.3f} "
                         f"({p_text(tests[f'{kind}_vs_centre']['p_value'])})")
        return ("; ".join(parts) + " (a lower deletion and a higher insertion AUC are better); removed pixels "
                f"filled with the {result['fill']}")
    if check == "channel_deletion":
        random = result["random"]["auc"]
        return (f"test-accuracy AUC as channels are zeroed in ranked order {result['ranked']['auc']:.3f} vs "
                f"{random['n']} random orders {random['mean']:.3f} (2.5-97.5%: {random['p2_5']:.3f}-"
                f"{random['p97_5']:.3f}), permutation {p_text(result['p_value'])}")
    if check == "randomized_trunk":
        rows = result["channels"]
        count = {v: [r["channel"] for r in rows if r["verdict"] == v]
                 for v in ("shows the decoder", "shows the channel", "unclear")}
        mse = result["mse"]
        flagged = f" (channels {', '.join(map(str, count['shows the decoder']))})" if count["shows the decoder"] else ""
        own = f", the model's own decoder {mse['model_decoder']['mean']:.4f}" if mse.get("model_decoder") else ""
        return (f"{len(count['shows the decoder'])} of {len(rows)} channel views flagged 'shows the decoder'{flagged}, "
                f"{len(count['shows the channel'])} show the channel, {len(count['unclear'])} unclear; all-channels "
                f"decode MSE with a decoder fitted on the trained trunk {mse['trained']['mean']:.4f} vs on a "
                f"re-initialized trunk {mse['random']['mean']:.4f}{own}")
    if check == "reencoding":
        error, same = result["feature_error"], result["same_class"]
        text = (f"relative feature error ||phi(x_hat) - phi(x)|| / ||phi(x)|| {interval(error['decode'])} vs "
                f"{interval(error['mean_image'])} for the mean image ({p_text(error['p_value'])}); same class on the "
                f"decode {_rate(same['rate'])} vs {_rate(same['chance'])} for the mean image "
                f"({p_text(same['p_value'])})")
        lights = result.get("channel_lights_up")
        if lights:
            text += (f"; channel k is the most active when only channel k is decoded {_rate(lights['rate'])} vs "
                     f"chance {_rate(lights['chance'])} ({p_text(lights['p_value'])})")
        return text
    return ""


def _results(summary: dict, view: str) -> dict:
    """{check: its result dict} of one view, from sanity.json's gradcam / smoothgrad / ablation / decode."""
    kind, _, layer = view.partition("_")
    found = summary.get(kind) or {}
    return (found if kind == "smoothgrad" else found.get(layer)) or {}


def _figures(run_dir: str, summary: dict, names: list[str], notes: list) -> list[dict]:
    out = []
    for name in names:
        relative = (summary.get("figures") or {}).get(name)
        if relative is None:
            continue
        path = os.path.join(run_dir, relative)  # analysis/NAME: the schema allows nothing else
        if not os.path.isfile(path):
            notes.append(note(f"sanity.json lists {relative} but the file is missing; rerun:",
                              sanity_command(run_dir)))
            continue
        out.append(figure(path, f"{name.replace('_', ' ')}", layout.SANITY_FIGURE))
    return out


def view_figures(view: str) -> list[str]:
    kind, _, layer = view.partition("_")
    return {"gradcam": [f"cascade_{view}", f"deletion_{view}"], "smoothgrad": ["cascade_smoothgrad",
                                                                                "deletion_smoothgrad"],
            "ablation": [f"cascade_{view}", f"channel_deletion_{layer}"],
            "decode": [f"trunk_control_{layer}"]}.get(kind, [])


def channel_rows(result: dict) -> list[dict]:
    """Per channel of a decoded layer: the randomized-trunk control and the re-encoding's 'lights up' rate."""
    trunk = result.get("randomized_trunk") or {"channels": []}
    lights = ((result.get("reencoding") or {}).get("channel_lights_up") or {}).get("per_channel") or {}
    return [{"channel": r["channel"], "rank_correlation": interval(r["rank_correlation"]),
             "ssim": interval(r["ssim"]),
             "matched": interval(r["matched_rank_correlation"]) if r.get("matched_rank_correlation") else "n/a",
             "verdict": r["verdict"], "lights_up": _rate(lights[str(r["channel"])])
             if str(r["channel"]) in lights else "n/a"} for r in trunk["channels"]]


def sanity_section(run: Run) -> dict:
    """The template's `sanity` dict: present, notes, command, settings, views (verdict, line, checks with their
    evidence, figures), decoded layers' per-channel rows, timings."""
    run_dir = run.folder
    path = run.analysis_path(layout.SANITY_SUMMARY)
    summary = read_json(path, layout.SANITY_SUMMARY)
    if summary is None:
        text = ("No sanity checks yet: this run's analysis has no sanity.json. They test whether each view depends "
                "on the trained weights and says what the model uses (a few minutes); add them with:")
        return {"present": False, "notes": [note(text, sanity_command(run_dir))]}
    notes: list = []
    views = []
    for view, verdict in summary["verdicts"].items():
        results = _results(summary, view)
        checks = [{"name": CHECK_NAMES.get(check, check), "verdict": value,
                   "evidence": evidence(check, results[check], view) if isinstance(results.get(check), dict) else ""}
                  for check, value in verdict["checks"].items()]
        views.append({"view": view, "title": view_title(view), "verdict": verdict["verdict"], "line": verdict["line"],
                      "checks": checks, "figures": _figures(run_dir, summary, view_figures(view), notes)})
    layers = [{"name": layer, "channels": channel_rows(result)} for layer, result in summary["decode"].items()
              if result.get("randomized_trunk")]
    settings = summary["settings"]
    timings = [{"part": part, "seconds": f"{seconds:.1f}"} for part, seconds in summary["timings_s"].items()]
    return {"present": True, "notes": notes, "command": sanity_command(run_dir), "views": views, "layers": layers,
            "settings": settings, "images": len(summary["image_indices"]), "seconds": f"{summary['seconds']:.0f}",
            "timings": timings, "cascade_layers": [p.split("/")[-1] for p in summary["cascade_layers"]]}
