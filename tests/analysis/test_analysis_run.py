"""`python -m keras_latent.analyze`: the files it writes, its flags, and one-line errors on bad input."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import copy_folder, run_main

from keras_latent import analyze
from keras_latent.runs import layout

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def read_csv(path: str) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def analyzed_run(trained_run, tmp_path_factory):
    """A copy of the tiny trained run, analyzed with the default flags."""
    run_dir = copy_folder(trained_run, tmp_path_factory.mktemp("analyzed"))
    code, _, _ = run_main(analyze.main, [run_dir])
    assert code == 0
    return run_dir


@pytest.mark.slow
def test_default_analysis_writes_every_file(analyzed_run):
    names = sorted(os.listdir(os.path.join(analyzed_run, "analysis")))
    expected = [f"{kind}_{split}_0_{layer}.png" for kind in ("activations", "channels")
                for split in ("test", "train") for layer in ("conv1", "conv2")]
    expected += [f"{kind}_{layer}.png" for kind in ("ablation", "channel_class_heatmap", "features")
                 for layer in ("conv1", "conv2")]
    expected += [f"{kind}_{split}_0.png" for kind in ("gradcam", "saliency") for split in ("test", "train")]
    expected += ["ablation.csv", "analysis.json", "channel_stats.csv", "features.csv", "views_conv1.npz",
                 "views_conv2.npz"]
    assert names == sorted(expected)
    with open(os.path.join(analyzed_run, "analysis", "analysis.json"), encoding="utf-8") as f:
        summary = json.load(f)
    listed = sorted(os.path.basename(entry["path"]) for entry in summary["files"])
    assert listed == sorted(n for n in expected if n.endswith(".png"))
    for entry in summary["files"]:
        assert os.path.isfile(os.path.join(analyzed_run, entry["path"]))
        assert entry["kind"] in ("channels", "activations", "heatmap", "ablation", "features", "gradcam", "saliency")
        suffix = f"_{entry['split']}_{entry['index']}.png" if entry["kind"] in ("gradcam", "saliency") else \
            f"_{entry['layer']}.png"
        assert os.path.basename(entry["path"]).endswith(suffix)
    assert summary["methods"] == ["decode", "features", "gradcam", "saliency"]
    assert set(summary["seconds"]) == {"decode", "measures", "features", "gradcam", "saliency"}


@pytest.mark.slow
def test_analysis_json_summarizes_the_ablation(analyzed_run, sample_splits):
    with open(os.path.join(analyzed_run, "analysis", "analysis.json"), encoding="utf-8") as f:
        summary = json.load(f)
    with open(layout.METRICS.path(analyzed_run), encoding="utf-8") as f:
        metrics = json.load(f)
    assert summary["mode"] == "keep" and summary["layers"] == ["conv1", "conv2"]
    assert summary["images"][1] == {"split": "test", "index": 0, "label": CLASSES[sample_splits.y_test[0]],
                                    "class_index": int(sample_splits.y_test[0])}
    assert summary["intact_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert summary["intact_per_class_accuracy"] == pytest.approx(metrics["per_class_accuracy"])
    ablation = read_csv(os.path.join(analyzed_run, "analysis", "ablation.csv"))
    for layer in ("conv1", "conv2"):
        drops = [entry["accuracy_drop"] for entry in summary["top_channels"][layer]]
        assert len(drops) == 5 and drops == sorted(drops, reverse=True)
        rows = [r for r in ablation if r["layer"] == layer]
        assert max(float(r["accuracy_drop"]) for r in rows) == pytest.approx(drops[0], abs=1e-5)
        assert sorted(summary["class_channels"][layer]) == sorted(CLASSES)


@pytest.mark.slow
def test_csv_tables_have_the_contract_columns(analyzed_run):
    stats = read_csv(os.path.join(analyzed_run, "analysis", "channel_stats.csv"))
    ablation = read_csv(os.path.join(analyzed_run, "analysis", "ablation.csv"))
    assert list(stats[0]) == ["layer", "channel", "mean_activation", *CLASSES]
    assert list(ablation[0]) == ["layer", "channel", "accuracy", "accuracy_drop", *[f"acc_{c}" for c in CLASSES]]
    for table in (stats, ablation):
        assert [(r["layer"], int(r["channel"])) for r in table] == [("conv1", c) for c in range(6)] + [
            ("conv2", c) for c in range(16)]
    for row in ablation:
        assert float(row["accuracy_drop"]) == pytest.approx(float(ablation[0]["accuracy"]) + float(
            ablation[0]["accuracy_drop"]) - float(row["accuracy"]), abs=1e-5)  # drop = intact - ablated


def test_flags_choose_layers_channels_images_and_mode(copy_run, capsys):
    run_dir = copy_run()
    os.makedirs(os.path.join(run_dir, "analysis"))
    open(os.path.join(run_dir, "analysis", "stale.png"), "w").close()
    argv = [run_dir, "--layers", "conv2", "--channels", "5,0,3", "--mode", "drop", "--train-index", "3",
            "--test-index", "7", "--top", "2", "--methods", "decode"]
    code, out, _ = run_main(analyze.main, argv, capsys)
    assert code == 0 and "conv2: accuracy drop" in out
    names = sorted(os.listdir(os.path.join(run_dir, "analysis")))
    assert names == sorted(["ablation.csv", "analysis.json", "channel_stats.csv", "ablation_conv2.png",
                            "channel_class_heatmap_conv2.png", "channels_train_3_conv2.png",
                            "channels_test_7_conv2.png", "activations_train_3_conv2.png",
                            "activations_test_7_conv2.png", "views_conv2.npz"])  # stale.png is gone
    with open(os.path.join(run_dir, "analysis", "analysis.json"), encoding="utf-8") as f:
        summary = json.load(f)
    assert summary["mode"] == "drop" and summary["channels"] == {"conv2": [5, 0, 3]}
    assert [im["index"] for im in summary["images"]] == [3, 7]
    assert len(summary["top_channels"]["conv2"]) == 2
    assert {r["channel"] for r in read_csv(os.path.join(run_dir, "analysis", "ablation.csv"))} == {"5", "0", "3"}


@pytest.mark.parametrize("flags, message", [
    (["--layers", "conv1,conv9"], "unknown trunk layer 'conv9'; this model's trunk layers are conv1, conv2"),
    (["--channels", "0,6"], r"channels [6] out of range for conv1: it has 6 channels (0..5)"),
    (["--layers", "conv2", "--channels", "16"], "out of range for conv2: it has 16 channels (0..15)"),
    (["--train-index", "256"], "--train-index must be between 0 and 255 (the split has 256 images), got 256"),
    (["--test-index", "-1"], "--test-index must be between 0 and 1016"),
    (["--mode", "all"], "argument --mode: invalid choice: 'all'"),
    (["--channels", "a,b"], "expected comma-separated integers like 6,16, got 'a,b'"),
    (["--dataset", "/no/such/data"], "is neither a known name nor an existing path"),
    (["--methods", "decode,lime"], "--methods must be a comma-separated list of decode, features, gradcam, "
                                   "saliency, sanity, got decode,lime"),
    (["--methods", ","], "--methods must be a comma-separated list of decode, features, gradcam, saliency, sanity, "
                         "got nothing"),
    (["--feature-steps", "0"], "--feature-steps must be >= 1, got 0"),
    (["--feature-lr", "0"], "--feature-lr must be > 0, got 0.0"),
    (["--saliency-samples", "-2"], "--saliency-samples must be >= 1, got -2"),
])
def test_bad_flags_get_one_clear_line(trained_run, capsys, flags, message):
    code, out, err = run_main(analyze.main, [trained_run, *flags], capsys)
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not os.path.exists(os.path.join(trained_run, "analysis"))


def test_a_folder_that_is_not_a_run_gets_one_clear_line(tmp_path, capsys):
    code, _, err = run_main(analyze.main, [str(tmp_path)], capsys)
    assert code == 2 and "is not a run folder: it has no config.json" in err and err.count("\n") == 1


def test_a_missing_or_corrupt_model_gets_one_clear_line(copy_run, capsys):
    run_dir = copy_run()
    model_path = layout.MODEL.path(run_dir)
    with open(model_path, "wb") as f:
        f.write(b"not a zip file")
    code, _, err = run_main(analyze.main, [run_dir], capsys)
    assert code == 2 and err.startswith(f"error: {model_path} is damaged (not a .keras zip archive); rebuild it with: "
                                        f"python -m keras_latent.train --out {run_dir} --overwrite")
    assert err.count("\n") == 1
    os.remove(model_path)
    code, _, err = run_main(analyze.main, [run_dir], capsys)
    assert code == 2 and f"{model_path} is missing; rebuild it with: " in err


def test_a_dataset_with_other_classes_is_refused(trained_run, tmp_path, capsys, sample_splits):
    import keras

    for name, image in (("cats", sample_splits.x_test[0]), ("dogs", sample_splits.x_test[1])):
        for split in ("train", "test"):
            os.makedirs(tmp_path / split / name)
            keras.utils.save_img(str(tmp_path / split / name / "a.png"), image)
    code, _, err = run_main(analyze.main, [trained_run, "--dataset", str(tmp_path)], capsys)
    assert code == 2 and "has classes ['cats', 'dogs'], but the run was trained on ['airplane'" in err


def test_a_failed_analysis_keeps_the_previous_one(copy_run, capsys, monkeypatch):
    from keras_latent.analysis import plots as latent_plots

    run_dir = copy_run()
    os.makedirs(os.path.join(run_dir, "analysis"))
    with open(os.path.join(run_dir, "analysis", "analysis.json"), "w") as f:
        f.write("{}")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(latent_plots, "plot_ablation", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        analyze.main([run_dir, "--layers", "conv1", "--channels", "0"])
    assert os.listdir(os.path.join(run_dir, "analysis")) == ["analysis.json"]
    assert not [n for n in os.listdir(run_dir) if n.startswith(".analysis")]  # no temp folder left


def test_a_run_without_decoder_gets_maps_statistics_and_ablation(classifier_only_run, copy_run, capsys):
    run_dir = copy_run(classifier_only_run)
    code, out, _ = run_main(analyze.main, [run_dir, "--layers", "conv1", "--methods", "decode"], capsys)
    assert code == 0 and "no decoder" in out
    names = sorted(os.listdir(os.path.join(run_dir, "analysis")))
    assert names == sorted(["ablation.csv", "analysis.json", "channel_stats.csv", "ablation_conv1.png",
                            "channel_class_heatmap_conv1.png", "activations_train_0_conv1.png",
                            "activations_test_0_conv1.png", "views_conv1.npz"])
    ablation = read_csv(os.path.join(run_dir, "analysis", "ablation.csv"))
    assert len(ablation) == 6 and np.isfinite([float(r["accuracy"]) for r in ablation]).all()


@pytest.mark.slow
def test_the_module_runs_as_a_script_and_fails_cleanly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "keras_latent.analyze", str(tmp_path / "nowhere")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_analysis_measures_faithfulness_and_says_which_path_drew_each_grid(analyzed_run):
    with open(layout.analysis_file(analyzed_run, layout.ANALYSIS_SUMMARY), encoding="utf-8") as f:
        summary = json.load(f)
    with open(layout.METRICS.path(analyzed_run), encoding="utf-8") as f:
        recorded = json.load(f)["faithfulness"]
    faithful = summary["faithfulness"]
    assert summary["decode_path_setting"] == "auto"
    assert summary["decode_paths"] == faithful["decode_paths"] == recorded["decode_paths"]  # same model, same split
    assert faithful["layers"] == recorded["layers"] and set(faithful["layers"]) == {"conv1", "conv2"}
    for layer, path in summary["decode_paths"].items():
        row = faithful["layers"][layer]
        assert path == ("tail" if row["tail"]["mse"] <= row["propagate"]["mse"] else "propagate")
        assert 0 < row[path]["mse"] and row[path]["psnr"] > 0
    grids = [entry for entry in summary["files"] if entry["kind"] == "channels"]
    assert grids and all(entry["decode_path"] == summary["decode_paths"][entry["layer"]] for entry in grids)


@pytest.mark.slow
def test_decode_path_flag_forces_a_path_and_a_bad_one_is_one_line(trained_run, tmp_path, capsys):
    run_dir = copy_folder(trained_run, tmp_path)
    code, out, _ = run_main(analyze.main, [run_dir, "--decode-path", "propagate", "--channels", "0",
                                           "--layers", "conv1"], capsys)
    assert code == 0 and "conv1: all channels decoded along the propagate path" in out
    with open(layout.analysis_file(run_dir, layout.ANALYSIS_SUMMARY), encoding="utf-8") as f:
        summary = json.load(f)
    assert summary["decode_paths"] == {"conv1": "propagate"} and summary["decode_path_setting"] == "propagate"
    code, _, err = run_main(analyze.main, [run_dir, "--decode-path", "sideways"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "tail" in err and "sideways" in err


@pytest.mark.slow
def test_features_csv_and_the_channel_arrays_follow_their_contract(analyzed_run, sample_splits):
    from keras_latent.analysis import latent
    from keras_latent.data.pipeline import normalize
    from keras_latent.model.saving import load_run_model

    folder = os.path.join(analyzed_run, "analysis")
    with open(os.path.join(folder, "analysis.json"), encoding="utf-8") as f:
        summary = json.load(f)
    rows = read_csv(os.path.join(folder, "features.csv"))
    assert list(rows[0]) == ["layer", "channel", "optimized_activation", "best_test_activation", "best_test_index"]
    assert [(r["layer"], int(r["channel"])) for r in rows] == [("conv1", c) for c in range(6)] + [
        ("conv2", c) for c in range(16)]
    for row in rows:
        listed = summary["features"][row["layer"]][int(row["channel"])]
        assert float(row["optimized_activation"]) == pytest.approx(listed["optimized_activation"], rel=1e-5)
        assert 0 <= int(row["best_test_index"]) < len(sample_splits.x_test)
    assert summary["feature_settings"]["steps"] == 512 and summary["feature_settings"]["seed"] == 0
    assert [p["split"] for p in summary["predictions"]] == ["train", "test"]
    model = load_run_model(analyzed_run)
    for layer, width, side in (("conv1", 6, 14), ("conv2", 16, 5)):
        assert summary["channel_views"][layer] == f"analysis/views_{layer}.npz"
        with np.load(os.path.join(analyzed_run, summary["channel_views"][layer]), allow_pickle=False) as views:
            assert sorted(views.files) == ["activation_maps", "best_test", "channels", "decoded", "optimized",
                                           "originals"]
            best = [row["best_test_index"] for row in summary["features"][layer]]
            np.testing.assert_array_equal(views["best_test"], sample_splits.x_test[best])
            assert views["channels"].tolist() == list(range(width))
            originals = views["originals"]  # the analysed images: train 0 of the run's (shuffled) split, test 0
            assert originals.shape == (2, 32, 32, 3) and originals.dtype == np.uint8
            np.testing.assert_array_equal(originals[1], sample_splits.x_test[0])
            assert views["optimized"].shape == (width, 32, 32, 3) and views["optimized"].dtype == np.uint8
            assert views["decoded"].shape == (2, width, 32, 32, 3) and views["decoded"].dtype == np.uint8
            maps = latent.layer_activations(model, np.asarray(normalize(originals)), layer)  # (2, h, w, C)
            np.testing.assert_allclose(views["activation_maps"], np.moveaxis(maps, -1, 1), atol=1e-5)
            assert views["activation_maps"].shape == (2, width, side, side)


@pytest.mark.slow
def test_methods_choose_the_views_and_measures_always_run(copy_run, capsys):
    run_dir = copy_run()
    code, out, _ = run_main(analyze.main, [run_dir, "--methods", "gradcam,saliency", "--layers", "conv2",
                                           "--saliency-samples", "4", "--test-index", "5"], capsys)
    assert code == 0 and "wall time: measures" in out and "gradcam" in out
    names = sorted(os.listdir(os.path.join(run_dir, "analysis")))
    assert names == sorted(["ablation.csv", "analysis.json", "channel_stats.csv", "ablation_conv2.png",
                            "channel_class_heatmap_conv2.png", "gradcam_train_0.png", "gradcam_test_5.png",
                            "saliency_train_0.png", "saliency_test_5.png"])  # no decoding, no features, no arrays
    with open(os.path.join(run_dir, "analysis", "analysis.json"), encoding="utf-8") as f:
        summary = json.load(f)
    assert summary["methods"] == ["gradcam", "saliency"] and summary["channel_views"] == {}
    assert set(summary["seconds"]) == {"measures", "gradcam", "saliency"} and "features" not in summary
    code, _, _ = run_main(analyze.main, [run_dir, "--methods", "features", "--layers", "conv1", "--channels", "2,4",
                                         "--feature-steps", "8"], capsys)
    assert code == 0
    assert sorted(n for n in os.listdir(os.path.join(run_dir, "analysis")) if not n.startswith(("abl", "chan"))) \
        == ["analysis.json", "features.csv", "features_conv1.png", "views_conv1.npz"]
    with np.load(os.path.join(run_dir, "analysis", "views_conv1.npz")) as views:
        assert sorted(views.files) == ["best_test", "channels", "optimized", "originals"]
        assert views["channels"].tolist() == [2, 4]


@pytest.mark.slow
def test_a_run_without_decoder_gets_every_view_but_decoded_tiles(classifier_only_run, copy_run):
    from keras_latent.analysis import AnalysisConfig, analyze_run

    run_dir = copy_run(classifier_only_run)
    summary = analyze_run(run_dir, AnalysisConfig(layers=("conv1",), feature_steps=8, saliency_samples=2))
    kinds = sorted(entry["kind"] for entry in summary["files"])
    assert kinds == ["ablation", "activations", "activations", "features", "gradcam", "gradcam", "heatmap",
                     "saliency", "saliency"]
    with np.load(os.path.join(run_dir, summary["channel_views"]["conv1"])) as views:
        assert sorted(views.files) == ["activation_maps", "best_test", "channels", "optimized", "originals"]
