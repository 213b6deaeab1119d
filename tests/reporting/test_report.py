"""report.py: the study as one self-contained HTML file, built from a tiny trained (and analysed) run.

The latent-analysis and tuning files are written here by hand, following the file contracts
exactly (real PNGs from matplotlib, real CSVs), so the report is checked independently of those
tools; one test also runs the real `keras_latent.analyze` before building the report.
"""
import base64
import csv
import html
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser

import numpy as np
import pytest
from helpers import chromium_binary, copy_folder, run_main
from matplotlib.figure import Figure
from PIL import Image

from keras_latent.files import save_figure
from keras_latent.report import main
from keras_latent.reporting.assets import fmt
from keras_latent.reporting.build import build_report
from keras_latent.runs import layout

SECTION_IDS = ["setup", "training", "classification", "reconstructions", "analysis", "sanity", "tuning"]
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


# ---------------------------------------------------------------- reading the report back


class ReportParser(HTMLParser):
    """Collects the title, section ids, images, notes and every element with data-* attributes."""

    def __init__(self):
        super().__init__()
        self.title, self.sections, self.images, self.records = "", [], [], []
        self._stack = []  # (tag, record or None) of open elements

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag == "section":
            self.sections.append(attrs.get("id"))
        if tag in VOID_TAGS:
            return
        record = None
        if tag == "title" or "class" in attrs or "id" in attrs or any(k.startswith("data-") for k in attrs):
            record = {"tag": tag, "attrs": attrs, "text": ""}
            self.records.append(record)
        self._stack.append((tag, record))

    def handle_endtag(self, tag):
        while self._stack:
            open_tag, _ = self._stack.pop()
            if open_tag == tag:
                break

    def handle_data(self, data):
        for _, record in self._stack:
            if record is not None:
                record["text"] += data

    def find(self, **attrs) -> list[dict]:
        return [r for r in self.records if all(r["attrs"].get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def cell(self, **attrs) -> str:
        found = self.find(**attrs)
        assert len(found) == 1, f"expected one element with {attrs}, found {len(found)}"
        return found[0]["text"].strip()

    def notes(self) -> list[str]:
        return [" ".join(r["text"].split()) for r in self.records if "missing" in r["attrs"].get("class", "").split()]


def parse(path) -> ReportParser:
    parser = ReportParser()
    parser.feed(open(path, encoding="utf-8").read())
    title = [r for r in parser.records if r["tag"] == "title"]
    parser.title = title[0]["text"] if title else ""
    return parser


def decoded_images(parser: ReportParser) -> list[Image.Image]:
    """Every <img> must be an embedded PNG that decodes."""
    images = []
    for attrs in parser.images:
        prefix, _, payload = attrs["src"].partition(",")
        assert prefix == "data:image/png;base64", attrs["src"][:80]
        image = Image.open(io.BytesIO(base64.b64decode(payload, validate=True)))
        image.load()
        assert image.format == "PNG" and min(image.size) > 0 and attrs.get("alt")
        images.append(image)
    return images


def row_of(parser: ReportParser, **attrs) -> dict[str, str]:
    """{data-col: text} of the cells inside the one row with `attrs` (cells follow their row in document order)."""
    records = parser.records
    start = records.index(parser.find(**attrs)[0])
    cells = {}
    for record in records[start + 1:]:
        if record["tag"] == "tr":
            break
        if "data-col" in record["attrs"]:
            cells[record["attrs"]["data-col"]] = record["text"].strip()
    return cells


# ---------------------------------------------------------------- contract fixtures (analysis, tuning)


def _figure(rng, width: float, height: float):
    fig = Figure(figsize=(width, height))
    ax = fig.subplots()
    ax.imshow(rng.random((8, int(8 * width / height))), cmap="viridis")
    ax.axis("off")
    return fig


# conv1's tail decode is worse than a constant image (its path: propagate); conv2 is no better than it either.
CONV2 = {"mse": 0.2601, "psnr": 11.87}
FAITHFULNESS = {"layers": {"conv1": {"tail": {"mse": 0.3121, "psnr": 11.08}, "propagate": CONV2},
                           "conv2": {"tail": CONV2, "propagate": CONV2}},
                "deepest_layer": "conv2", "mean_image": {"mse": 0.25, "psnr": 12.04},
                "decode_paths": {"conv1": "propagate", "conv2": "tail"},
                "no_better_than_mean_image": ["conv1", "conv2"]}


def write_contract_analysis(run_dir: str, class_names: list[str], layers=(("conv1", 6), ("conv2", 16))) -> dict:
    """RUN/analysis/ exactly as the analysis contract says: figures, channel_stats.csv, ablation.csv, analysis.json."""
    rng = np.random.default_rng(1)
    folder = layout.analysis_dir(run_dir)
    images = [{"split": "train", "index": 0, "label": class_names[6]},
              {"split": "test", "index": 3, "label": class_names[0]}]
    intact = {c: round(float(rng.uniform(0.1, 0.6)), 6) for c in class_names}
    summary = {"mode": "keep", "layers": [name for name, _ in layers], "images": images, "intact_accuracy": 0.3125,
               "intact_per_class_accuracy": intact, "top_channels": {}, "class_channels": {}, "files": [],
               "decode_path_setting": "auto", "decode_paths": {"conv1": "propagate", "conv2": "tail"},
               "faithfulness": FAITHFULNESS}
    ablation_rows, stats_rows = [], []
    for layer, channels in layers:
        for image in images:
            for kind, entry in (("channels", layout.CHANNEL_GRID), ("activations", layout.ACTIVATION_MAPS)):
                path = layout.analysis_relative(entry, split=image["split"], index=image["index"], layer=layer)
                save_figure(_figure(rng, 4, 1), os.path.join(run_dir, path), dpi=40)
                summary["files"].append({"kind": kind, "layer": layer, "split": image["split"],
                                         "index": image["index"], "path": path})
        for kind, entry in (("heatmap", layout.CLASS_HEATMAP), ("ablation", layout.ABLATION_PLOT)):
            save_figure(_figure(rng, 3, 2), entry.path(folder, layer=layer), dpi=40)
            path = layout.analysis_relative(entry, layer=layer)
            summary["files"].append({"kind": kind, "layer": layer, "path": path})
        drops = np.round(rng.uniform(-0.01, 0.08, channels), 6)
        class_acc = np.round(rng.uniform(0.0, 0.6, (channels, len(class_names))), 6)
        means = np.round(rng.uniform(0.0, 1.0, (channels, len(class_names))), 6)
        for c in range(channels):
            ablation_rows.append([layer, c, round(0.3125 - drops[c], 6), drops[c], *class_acc[c]])
            stats_rows.append([layer, c, round(float(means[c].mean()), 6), *means[c]])
        order = sorted(range(channels), key=lambda c: (-drops[c], c))
        summary["top_channels"][layer] = [{"channel": c, "accuracy_drop": float(drops[c])} for c in order[:5]]
        summary["class_channels"][layer] = {
            name: sorted(range(channels), key=lambda c: (-(intact[name] - class_acc[c, k]), c))[:5]
            for k, name in enumerate(class_names)}
    _write_csv(layout.ABLATION.path(folder),
               ["layer", "channel", "accuracy", "accuracy_drop", *[f"acc_{n}" for n in class_names]], ablation_rows)
    _write_csv(layout.CHANNEL_STATS.path(folder), ["layer", "channel", "mean_activation", *class_names],
               stats_rows)
    with open(layout.ANALYSIS_SUMMARY.path(folder), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    return summary


def _write_csv(path: str, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def write_contract_tuning(folder: str) -> dict:
    """A finished 2x2 grid as the tuning contract says: trials.csv, best.json, pareto.png."""
    os.makedirs(folder)
    trials = [["00", 1.0, 0.5, 0.2913, 0.1204, 1, 8.12, "COMPLETED"],
              ["01", 1.0, 2.0, 0.3371, 0.0922, 1, 8.5, "COMPLETED"],
              ["02", 0.5, 0.5, 0.2588, 0.1111, 1, 7.98, "COMPLETED"],
              ["03", 0.5, 2.0, 0.3006, 0.0871, 1, 8.02, "COMPLETED"]]
    _write_csv(layout.TRIALS.path(folder), ["trial_id", "ce_weight", "recon_weight", "val_accuracy",
                                                    "val_recon_mse", "epochs", "seconds", "status"], trials)
    best = {"ce_weight": 1.0, "recon_weight": 2.0, "val_accuracy": 0.3371, "val_recon_mse": 0.0922, "trial_id": "01"}
    with open(layout.BEST.path(folder), "w", encoding="utf-8") as f:
        json.dump(best, f)
    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    ax.scatter([t[4] for t in trials], [t[3] for t in trials])
    save_figure(fig, layout.PARETO.path(folder), dpi=50)
    return {"trials": trials, "best": best}


@pytest.fixture(scope="module")
def built(trained_run, tmp_path_factory):
    """One report of a tiny run with a contract analysis and a contract tuning folder."""
    root = tmp_path_factory.mktemp("report")
    run_dir = copy_folder(trained_run, root)
    class_names = json.load(open(layout.CONFIG.path(run_dir)))["data"]["class_names"]
    analysis = write_contract_analysis(run_dir, class_names)
    tuning = write_contract_tuning(str(root / "tuning"))
    path = build_report(run_dir, tuning_dir=str(root / "tuning"))
    return {"run": run_dir, "path": path, "analysis": analysis, "tuning": tuning, "parser": parse(path),
            "metrics": json.load(open(layout.METRICS.path(run_dir)))}


# ---------------------------------------------------------------- the report


def test_report_has_every_section_in_order_with_its_images_embedded(built):
    parser, run_dir = built["parser"], built["run"]
    assert built["path"] == layout.REPORT_FILE.path(run_dir)
    assert parser.sections == SECTION_IDS and parser.title.startswith("keras-latent report")
    images = decoded_images(parser)
    snapshots = [f for f in os.listdir(run_dir) if f.startswith("reconstructions_epoch_")]
    expected = 2 + len(snapshots) + len(built["analysis"]["files"]) + 1  # curves, confusion, ..., pareto
    assert len(snapshots) == 2 and len(images) == expected
    sources = {a["src"] for a in parser.images}
    for entry in built["analysis"]["files"]:  # every listed analysis figure, byte for byte
        data = open(os.path.join(run_dir, entry["path"]), "rb").read()
        assert "data:image/png;base64," + base64.b64encode(data).decode() in sources, entry["path"]
    sanity = [n for n in parser.notes() if n.startswith("No sanity checks yet")]  # opt-in: its note says how
    assert len(sanity) == 1 and parser.notes() == sanity, parser.notes()


def test_report_is_self_contained_and_print_ready(built):
    text = open(built["path"], encoding="utf-8").read()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert "<script" not in text and "<link" not in text and "@import" not in text and "url(" not in text
    assert "@media print" in text and "page-break-inside: avoid" in text and "overflow-x: auto" in text
    assert text.count('class="table-wrap"') == text.count("<table")  # every table can scroll sideways


def test_tables_equal_metrics_json(built):
    parser, metrics = built["parser"], built["metrics"]
    assert parser.cell(data_key="test_accuracy") == fmt(metrics["test_accuracy"])
    assert parser.cell(data_key="test_reconstruction_mse") == fmt(metrics["test_reconstruction_mse"])
    assert parser.cell(data_key="train_images") == str(metrics["train_images"])
    assert parser.cell(data_key="test_images") == str(metrics["test_images"])
    assert parser.cell(data_key="epochs") == str(metrics["epochs"])
    for name, accuracy in metrics["per_class_accuracy"].items():
        assert row_of(parser, data_class=name)["recall"] == fmt(accuracy), name
    assert row_of(parser, data_class="accuracy")["recall"] == fmt(metrics["test_accuracy"])
    supports = [int(row_of(parser, data_class=n)["support"]) for n in metrics["per_class_accuracy"]]
    assert sum(supports) == metrics["test_images"]


def test_model_summary_counts_the_model_parameters(built):
    import keras

    model = keras.saving.load_model(layout.MODEL.path(built["run"]), compile=False, safe_mode=True)
    parser = built["parser"]
    assert parser.cell(data_key="total_params") == f"{model.count_params():,}"
    summary_text = " ".join(r["text"] for r in parser.records if r["tag"] == "table"
                            and r["attrs"].get("id") == "model-summary")
    for name in ("trunk", "conv1", "conv2", "classifier_head", "decoder", "deconv1"):
        assert name in summary_text


def test_ablation_tables_equal_ablation_csv_largest_drop_first(built):
    parser, run_dir = built["parser"], built["run"]
    with open(layout.analysis_file(run_dir, layout.ABLATION), newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows
    for row in rows:
        cells = row_of(parser, data_layer=row["layer"], data_channel=row["channel"])
        assert cells["accuracy"] == fmt(row["accuracy"]) and cells["accuracy_drop"] == fmt(row["accuracy_drop"])
    for layer in ("conv1", "conv2"):
        shown = [int(r["attrs"]["data-channel"]) for r in parser.find(data_layer=layer) if r["tag"] == "tr"]
        expected = sorted((r for r in rows if r["layer"] == layer),
                          key=lambda r: (-float(r["accuracy_drop"]), int(r["channel"])))
        assert shown == [int(r["channel"]) for r in expected]
        top = built["analysis"]["top_channels"][layer][0]
        sentence = parser.cell(data_layer_top=layer)
        assert f"channel {top['channel']} (accuracy drop {fmt(top['accuracy_drop'])})" in sentence
    assert parser.cell(data_key="intact_accuracy") == fmt(built["analysis"]["intact_accuracy"])


def test_faithfulness_table_names_each_layers_path_and_flags_the_unfaithful(built):
    parser = built["parser"]
    rows = {r["attrs"]["data-faithfulness"]: r["text"] for r in parser.records if "data-faithfulness" in r["attrs"]}
    assert list(rows) == ["conv1", "conv2"]
    assert [r["text"].strip() for r in parser.find(data_col="path")] == ["propagate", "tail"]
    assert [r["text"].strip() for r in parser.find(data_col="mse")] == [fmt(0.2601), fmt(0.2601)]
    assert "worse than propagating" in rows["conv1"] and "both paths are the same" in rows["conv2"]
    assert [r["attrs"]["data-flag"] for r in parser.records if "data-flag" in r["attrs"]] == ["conv1", "conv2"]
    assert parser.cell(data_key="mean_image_mse") == fmt(0.25)
    for layer, path in FAITHFULNESS["decode_paths"].items():  # the grids say which path drew them
        assert any(i["alt"].startswith(f"{layer}, ") and f"decoded along the {path} path" in i["alt"]
                   for i in parser.images)


def test_tuning_table_and_best_weights(built):
    parser, tuning = built["parser"], built["tuning"]
    shown = [r["attrs"]["data-trial"] for r in parser.find() if "data-trial" in r["attrs"]]
    assert shown == ["01", "03", "00", "02"]  # best validation accuracy first
    for trial in tuning["trials"]:
        cells = row_of(parser, data_trial=trial[0])
        assert cells["val_accuracy"] == fmt(trial[3]) and cells["val_recon_mse"] == fmt(trial[4])
        assert (cells["ce_weight"], cells["recon_weight"]) == (f"{trial[1]:g}", f"{trial[2]:g}")
    assert [r["attrs"].get("class") for r in parser.find(data_trial="01")] == ["best"]
    best = " ".join(parser.cell(id="best-weights").split())
    assert "cross-entropy 1, reconstruction 2" in best and "--weights-from" in best


def test_best_and_worst_classes_are_named_from_the_numbers(built):
    parser, per_class = built["parser"], built["metrics"]["per_class_accuracy"]
    sentence = " ".join(r["text"] for r in parser.records if r["attrs"].get("class") == "sentence")
    best = max(per_class, key=per_class.get)
    worst = min(per_class, key=per_class.get)
    assert re.search(rf"recognises {best}\b.* best \({100 * per_class[best]:.1f}%", sentence), sentence
    assert re.search(rf"and {worst}\b.* worst \({100 * per_class[worst]:.1f}%\)", sentence), sentence


def test_best_worst_sentence_names_ties_and_skips_absent_classes():
    from keras_latent.reporting.classification import best_worst_sentence

    text = best_worst_sentence({"cat": 0.5, "dog": 0.25, "ship": 0.5, "frog": None}, 0.4)
    assert text.startswith("The model recognises cat and ship best (50.0% of their test images right) "
                           "and dog worst (25.0%)")
    assert "chance" in text and "25.0% for chance" in text
    assert best_worst_sentence({"cat": 0.5, "dog": 0.5}, None) == \
        "Every class is recognised equally often (50.0% of its test images)."


def test_sample_note_only_for_the_bundled_sample(trained_run):
    import dataclasses

    from keras_latent.reporting.run_sections import dataset_info
    from keras_latent.runs.records import load_config

    config = load_config(trained_run)
    metrics = json.load(open(layout.METRICS.path(trained_run)))
    assert dataset_info(config, metrics)["is_sample"]
    other = dataclasses.replace(config, data=dataclasses.replace(config.data, dataset="cifar10"))
    full = {"dataset": "CIFAR-10 (tensorflow-datasets): 50000 train / 10000 test images"}
    assert not dataset_info(other, full)["is_sample"]


def test_sample_note_is_in_the_report(built):
    text = " ".join(built["parser"].cell(id="sample-note").split())
    assert "not full CIFAR-10" in text and "--dataset cifar10" in text


# ---------------------------------------------------------------- missing and bad parts


def test_missing_parts_are_left_out_with_the_command_that_makes_them(copy_run):
    run_dir = copy_run()
    for entry in (layout.SNAPSHOT, layout.CURVES, layout.CONFUSION_MATRIX):
        for path in entry.glob(run_dir):
            os.remove(path)
    parser = parse(build_report(run_dir))
    assert parser.sections == SECTION_IDS and parser.images == []
    notes = parser.notes()
    assert any(n.startswith("No latent analysis yet") and f"python -m keras_latent.analyze {run_dir}" in n
               for n in notes)
    assert any(n.startswith("No loss-weight search") and "python tuning/search_weights.py --dataset sample" in n
               for n in notes)
    assert any("--snapshot-epochs 0,10,20" in n for n in notes)
    assert any(layout.CURVES.name in n for n in notes) and any(layout.CONFUSION_MATRIX.name in n for n in notes)
    assert parser.cell(data_key="test_accuracy")  # what is there is still reported


def test_the_report_needs_neither_the_model_nor_the_data_set(copy_run, tmp_path):
    """Every figure comes from the run's files: without model.keras and with the data set moved away, the report
    is the same page, with precision, recall and F1 per class as metrics.json holds them."""
    run_dir = copy_run()
    os.remove(layout.MODEL.path(run_dir))
    config_path = layout.CONFIG.path(run_dir)
    config = json.load(open(config_path))
    config["data"]["dataset"] = str(tmp_path / "moved-away")
    json.dump(config, open(config_path, "w"))
    parser = parse(build_report(run_dir))
    metrics = json.load(open(layout.METRICS.path(run_dir)))
    assert not any("recomputed" in n or "could not be loaded" in n or "model.keras" in n for n in parser.notes()), \
        parser.notes()
    assert metrics["per_class"] and metrics["averages"]
    for name, figures in metrics["per_class"].items():
        row = row_of(parser, data_class=name)
        assert (row["precision"], row["f1"], row["support"]) == (
            fmt(figures["precision"]), fmt(figures["f1"]), str(figures["support"])), name
        assert row["recall"] == fmt(metrics["per_class_accuracy"][name])  # recall is the per-class accuracy
    for key in ("macro", "weighted"):
        row = row_of(parser, data_class=f"{key} avg")
        assert (row["precision"], row["recall"], row["f1"]) == tuple(
            fmt(metrics["averages"][key][k]) for k in ("precision", "recall", "f1"))
    assert parser.cell(data_key="total_params")  # the model summary, from model_summary.json
    assert "Its most frequent mistake" in open(layout.REPORT_FILE.path(run_dir)).read() or \
        "makes no mistakes" in open(layout.REPORT_FILE.path(run_dir)).read()


def test_the_report_reads_each_file_once(copy_run, monkeypatch):
    """Counts every open() of a file in the run folder for reading while the report is built: each at most once,
    and never model.keras (nor any file of the data set: the report opens none outside the run folder but its
    templates)."""
    import builtins

    run_dir = copy_run()
    write_contract_analysis(run_dir, [f"c{i}" for i in range(10)])
    opened, real_open = [], builtins.open

    def counting_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and "r" in mode and "+" not in mode:
            opened.append(os.path.abspath(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    build_report(run_dir)
    monkeypatch.setattr(builtins, "open", real_open)
    root = os.path.abspath(run_dir)
    in_run = [p for p in opened if p.startswith(root + os.sep)]
    outside = {p for p in opened if not p.startswith(root + os.sep)}
    twice = sorted(p for p in set(in_run) if in_run.count(p) > 1)
    assert twice == [], twice
    for entry in (layout.CONFIG, layout.METRICS, layout.HISTORY, layout.MODEL_SUMMARY, layout.CURVES):
        assert os.path.abspath(entry.path(run_dir)) in in_run, entry.name  # what the check counts is read
    assert os.path.abspath(layout.analysis_file(run_dir, layout.ANALYSIS_SUMMARY)) in in_run
    assert os.path.abspath(layout.MODEL.path(run_dir)) not in in_run
    data_files = [p for p in outside if "sample_data" in p or "cifar-10-batches" in p or p.endswith(".keras")]
    assert data_files == [], data_files  # the run's data set (the bundled sample here) is never opened


def test_the_read_once_check_catches_a_second_read(copy_run, monkeypatch):
    """The planted failure: a section that reads metrics.json again is caught by the counting above."""
    import builtins

    from keras_latent.reporting import run_sections
    from keras_latent.runs.records import read_json

    run_dir = copy_run()
    real_training_section = run_sections.training_section

    def reads_again(run):
        read_json(layout.METRICS.path(run.folder), layout.METRICS)
        return real_training_section(run)

    monkeypatch.setattr(run_sections, "training_section", reads_again)
    opened, real_open = [], builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, mode="r", *a, **k: (opened.append(os.path.abspath(f)) if
                                                                        isinstance(f, str) and "r" in mode else None)
                        or real_open(f, mode, *a, **k))
    build_report(run_dir)
    monkeypatch.setattr(builtins, "open", real_open)
    assert opened.count(os.path.abspath(layout.METRICS.path(run_dir))) == 2


def test_a_run_from_before_the_recorded_figures_names_the_command_that_adds_them(copy_run):
    """metrics.json without precision, recall and F1 (and no model_summary.json): the report shows the per-class
    accuracy and the saved text report, and says how to add the rest; it never recomputes them."""
    run_dir = copy_run()
    metrics_path = layout.METRICS.path(run_dir)
    metrics = json.load(open(metrics_path))
    for key in ("per_class", "averages", "confusion_matrix"):
        metrics.pop(key)
    json.dump(metrics, open(metrics_path, "w"))
    os.remove(layout.MODEL_SUMMARY.path(run_dir))
    parser = parse(build_report(run_dir))
    notes = parser.notes()
    retrain = layout.rebuild_command(layout.METRICS, metrics_path)
    assert any("Precision, recall and F1 per class are not in this run's metrics.json" in n and retrain in n
               for n in notes), notes
    for name, accuracy in metrics["per_class_accuracy"].items():
        assert row_of(parser, data_class=name)["recall"] == fmt(accuracy)
    text = open(layout.REPORT_FILE.path(run_dir)).read()
    assert "precision" in text.split("<pre>")[1]  # the saved classification_report.txt
    assert "No model_summary.json: this run was trained before" in html.unescape(text)


def test_missing_listed_figure_and_stale_analysis_are_noted(copy_run):
    run_dir = copy_run()
    summary = write_contract_analysis(run_dir, [f"c{i}" for i in range(10)], layers=(("conv1", 6),))
    os.remove(os.path.join(run_dir, summary["files"][0]["path"]))
    later = os.path.getmtime(layout.analysis_file(run_dir, layout.ANALYSIS_SUMMARY)) + 10
    os.utime(layout.MODEL.path(run_dir), (later, later))
    parser = parse(build_report(run_dir))
    notes = parser.notes()
    assert any(summary["files"][0]["path"] in n and "is missing" in n for n in notes), notes
    assert any("older than model.keras" in n for n in notes), notes
    assert len(decoded_images(parser)) == 2 + 2 + len(summary["files"]) - 1


def test_classifier_only_run_is_reported_without_reconstructions(classifier_only_run, copy_run):
    run_dir = copy_run(classifier_only_run)
    parser = parse(build_report(run_dir))
    metrics = json.load(open(layout.METRICS.path(run_dir)))
    assert any("no decoder" in n for n in parser.notes()) and not parser.find(data_key="test_reconstruction_mse")
    assert parser.cell(data_key="test_accuracy") == fmt(metrics["test_accuracy"])
    assert len(decoded_images(parser)) == 2  # curves and confusion matrix


def test_bad_input_gets_one_line_and_exit_2(copy_run, tmp_path, capsys):
    run_dir = copy_run()
    report = layout.REPORT_FILE.path(run_dir)
    open(report, "w").write("previous report")
    (tmp_path / "empty").mkdir()
    broken_tuning = str(tmp_path / "broken_tuning")
    write_contract_tuning(broken_tuning)
    with open(layout.BEST.path(broken_tuning), "w") as f:
        json.dump({"ce_weight": 1, "recon_weight": 2, "val_accuracy": "high"}, f)
    os.makedirs(layout.analysis_dir(run_dir))
    cases = [([str(tmp_path / "nope")], None, "is not a run folder"),
             ([run_dir, "--tuning", str(tmp_path / "missing")], None, "is not a folder"),
             ([run_dir, "--tuning", str(tmp_path / "empty")], None, "has no trials.csv"),
             ([run_dir, "--colour"], None, "unrecognized arguments: --colour"),
             ([run_dir, "--tuning", broken_tuning], None,
              "best.json field 'val_accuracy' must be a number from 0 to 1, got 'high'; rebuild it with: "),
             ([run_dir], "{not json", "analysis.json is not valid JSON"),
             ([run_dir], '{"layers": 3}', "analysis.json lacks the field 'mode' (one of keep, drop); rebuild it with: "
                                          f"python -m keras_latent.analyze {run_dir}")]
    for argv, analysis_json, expected in cases:
        if analysis_json is not None:
            open(layout.analysis_file(run_dir, layout.ANALYSIS_SUMMARY), "w").write(analysis_json)
        code, _, err = run_main(main, argv, capsys)
        assert code == 2 and err.startswith("error: ") and expected in err, (argv, err)
        assert err.count("\n") == 1 and "Traceback" not in err
        assert open(report).read() == "previous report"  # nothing half-written or lost


def test_ablation_csv_without_the_contract_columns_is_one_line(copy_run, capsys):
    run_dir = copy_run()
    write_contract_analysis(run_dir, [f"c{i}" for i in range(10)], layers=(("conv1", 6),))
    _write_csv(layout.analysis_file(run_dir, layout.ABLATION), ["layer", "chan", "acc"], [["conv1", 0, 0.1]])
    code, _, err = run_main(main, [run_dir], capsys)
    assert code == 2 and "lacks the columns channel, accuracy, accuracy_drop" in err and err.count("\n") == 1


def test_cli_subprocess_not_a_run_folder(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "keras_latent.report", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ") and "is not a run folder" in proc.stderr


# ---------------------------------------------------------------- with the real analysis


@pytest.mark.slow
def test_analyze_flag_runs_the_real_analysis_once_and_reports_it(copy_run, capsys):
    run_dir = copy_run()
    code, _, err = run_main(main, [run_dir, "--analyze"], capsys)
    assert code == 0, err
    summary_path = layout.analysis_file(run_dir, layout.ANALYSIS_SUMMARY)
    summary = json.load(open(summary_path))
    parser = parse(layout.REPORT_FILE.path(run_dir))
    assert all("loss-weight search" in n or n.startswith("No sanity checks") for n in parser.notes()), parser.notes()
    decoded_images(parser)
    figures = [attrs for attrs in parser.images if attrs.get("class") != "tile"]  # tiles: the channel cards'
    snapshots = [f for f in os.listdir(run_dir) if f.startswith("reconstructions_epoch_")]
    assert len(figures) == 2 + len(snapshots) + len(summary["files"])
    assert len(parser.find(data_card="0")) == 2  # a card for channel 0 of conv1 and of conv2
    with open(layout.analysis_file(run_dir, layout.ABLATION), newline="") as f:
        for row in csv.DictReader(f):
            cells = row_of(parser, data_layer=row["layer"], data_channel=row["channel"])
            assert cells["accuracy_drop"] == fmt(row["accuracy_drop"])
    stamp = os.path.getmtime(summary_path)
    build_report(run_dir, analyze=True)  # present and current: not run again
    assert os.path.getmtime(summary_path) == stamp


# ---------------------------------------------------------------- in a real browser


RENDER_CHECK = """<script>addEventListener('load', () => {
  const images = [...document.images];
  const out = document.createElement('pre'); out.id = 'render-check';
  out.textContent = JSON.stringify({title: document.title, h1: document.querySelector('h1').innerText,
    images: images.length, loaded: images.filter(i => i.complete && i.naturalWidth > 0).length,
    page_width: document.documentElement.scrollWidth, window_width: window.innerWidth});
  document.body.appendChild(out);
});</script>"""


def render_check(browser: str, report: str, width: int, workdir: str) -> dict:
    """Open a copy of the report with a load-time check appended; return what the page measured."""
    probe = os.path.join(workdir, f"probe_{width}.html")
    text = open(report, encoding="utf-8").read()
    open(probe, "w", encoding="utf-8").write(text.replace("</body>", RENDER_CHECK + "</body>"))
    proc = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={workdir}/profile", f"--window-size={width},900",
                           "--virtual-time-budget=10000", "--dump-dom", "file://" + probe],
                          capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="render-check">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stderr[-2000:]
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.slow
def test_report_renders_in_headless_chromium(built, views_report):
    browser = chromium_binary()
    if browser is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    workdir = tempfile.mkdtemp()
    try:
        for report, width in itertools.product((built, views_report), (1280, 500)):  # views_report: channel cards
            result = render_check(browser, report["path"], width, workdir)  # a laptop and a narrow window
            assert result["title"] == report["parser"].title and result["h1"] == result["title"]
            assert result["images"] == len(report["parser"].images) > 0
            assert result["loaded"] == result["images"]  # naturalWidth > 0 for every image
            assert result["page_width"] <= result["window_width"], result  # nothing may widen the page
        shot = os.path.join(workdir, "report.png")
        subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={workdir}/profile", "--window-size=1280,2000",
                        f"--screenshot={shot}", "file://" + built["path"]],
                       capture_output=True, timeout=120, check=True)
        image = np.asarray(Image.open(shot).convert("L"))
        assert image.shape == (2000, 1280) and image.std() > 10  # something was drawn, not a blank page
        pdf = os.path.join(workdir, "report.pdf")
        subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={workdir}/profile", "--no-pdf-header-footer",
                        f"--print-to-pdf={pdf}", "file://" + built["path"]],
                       capture_output=True, timeout=120, check=True)
        pages = len(re.findall(rb"/Type\s*/Page\b", open(pdf, "rb").read()))
        assert pages > len(SECTION_IDS)  # prints, each section starting on a new page
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------- the three views of each channel


@pytest.fixture(scope="module")
def views_report(trained_run, tmp_path_factory):
    """A report of a tiny run analysed with every method (few feature steps and SmoothGrad samples: quick)."""
    from keras_latent.analysis import AnalysisConfig, analyze_run

    run_dir = copy_folder(trained_run, tmp_path_factory.mktemp("views"))
    summary = analyze_run(run_dir, AnalysisConfig(feature_steps=16, saliency_samples=4))
    path = build_report(run_dir)
    return {"run": run_dir, "path": path, "summary": summary, "parser": parse(path)}


def _png_array(src: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.partition(",")[2]))).convert("RGB"))


@pytest.mark.slow
def test_one_card_per_channel_with_its_three_views(views_report):
    parser, run_dir, summary = views_report["parser"], views_report["run"], views_report["summary"]
    assert all("loss-weight search" in n or n.startswith("No sanity checks") for n in parser.notes()), parser.notes()
    decoded_images(parser)  # every image, tiles included, is an embedded PNG that decodes, with alt text
    features_csv = {(r["layer"], int(r["channel"])): r for r in csv.DictReader(
        open(layout.analysis_file(run_dir, layout.FEATURES_TABLE), newline=""))}
    ablation = {(r["layer"], int(r["channel"])): r for r in csv.DictReader(
        open(layout.analysis_file(run_dir, layout.ABLATION), newline=""))}
    intact = summary["intact_per_class_accuracy"]
    for layer, width in (("conv1", 6), ("conv2", 16)):
        cards = [r for r in parser.find(data_layer=layer) if "data-card" in r["attrs"]]
        assert [int(r["attrs"]["data-card"]) for r in cards] == list(range(width))
        with np.load(layout.analysis_file(run_dir, layout.CHANNEL_VIEWS, layer=layer)) as views:
            optimized, best_test, decoded = views["optimized"], views["best_test"], views["decoded"]
        for channel in range(width):
            card = parser.find(data_layer=layer, data_card=str(channel))[0]
            text = " ".join(card["text"].split())
            tiles = [a for a in parser.images if a.get("class") == "tile" and a["alt"].startswith(
                f"{layer} channel {channel}:")]
            assert len(tiles) == 6  # optimized, top test image, decoded tile and activation map of both images
            np.testing.assert_array_equal(_png_array(tiles[0]["src"]), optimized[channel])
            np.testing.assert_array_equal(_png_array(tiles[1]["src"]), best_test[channel])
            np.testing.assert_array_equal(_png_array(tiles[2]["src"]), decoded[0, channel])
            row = features_csv[(layer, channel)]
            assert f"optimized image {float(row['optimized_activation']):.2f}" in text
            assert f"highest on a test image {float(row['best_test_activation']):.2f}" in text
            drops = {name: intact[name] - float(ablation[(layer, channel)][f"acc_{name}"]) for name in intact}
            worst = max(drops, key=drops.get)
            if drops[worst] > 0:
                assert f"Loses most without it: {worst} (\u2212{100 * drops[worst]:.1f} points)" in text
            else:
                assert "No class loses accuracy without it." in text


@pytest.mark.slow
def test_grad_cam_saliency_and_feature_grids_are_embedded(views_report):
    parser, run_dir, summary = views_report["parser"], views_report["run"], views_report["summary"]
    sources = {a["src"] for a in parser.images}
    kinds = [entry["kind"] for entry in summary["files"]]
    assert kinds.count("gradcam") == kinds.count("saliency") == 2 and kinds.count("features") == 2
    for entry in summary["files"]:
        data = open(os.path.join(run_dir, entry["path"]), "rb").read()
        assert "data:image/png;base64," + base64.b64encode(data).decode() in sources, entry["path"]
    text = open(views_report["path"], encoding="utf-8").read()
    assert text.index("Where the classifier looks") < text.index('id="layer-conv1"')  # beside the images


@pytest.mark.slow
def test_broken_channel_arrays_are_one_line_or_a_note(views_report, tmp_path, capsys):
    run_dir = copy_folder(views_report["run"], tmp_path)
    path = layout.analysis_file(run_dir, layout.CHANNEL_VIEWS, layer="conv2")
    arrays = dict(np.load(path))
    cases = [(b"not a zip", "is not a readable .npz file"),
             ({**arrays, "code": np.array([object()], dtype=object)}, "is not a readable .npz file"),
             ({**arrays, "decoded": arrays["decoded"][:, :3]}, "does not follow the analysis layout")]
    for content, expected in cases:
        if isinstance(content, bytes):
            open(path, "wb").write(content)
        else:
            np.savez(path, **content)
        code, _, err = run_main(main, [run_dir], capsys)
        assert code == 2 and expected in err and err.count("\n") == 1 and "Traceback" not in err, err
    os.remove(path)
    notes = parse(build_report(run_dir)).notes()
    assert any("views_conv2.npz but the file is missing" in n for n in notes), notes
