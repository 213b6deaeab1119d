"""`analyze --methods ...,sanity` (issue 23): sanity.json and its figures from a run folder, the report's sanity
section read from those files only, the schema refusing a damaged sanity.json, and a planted failure flagged end
to end (in sanity.json and in the report's line) while the real view beside it passes."""
import dataclasses
import html
import json
import os
import re
import shutil

import numpy as np
import pytest
from helpers import copy_folder, run_main

from keras_latent import analyze
from keras_latent.errors import UsageError
from keras_latent.reporting.build import build_report
from keras_latent.runs import layout
from keras_latent.runs.records import read_json

SMALL = ["--sanity-images", "8", "--sanity-accuracy-images", "96", "--sanity-decoder-epochs", "1",
         "--sanity-decoder-images", "128"]
VIEWS = {"gradcam_conv1", "gradcam_conv2", "smoothgrad", "ablation_conv1", "ablation_conv2", "decode_conv1",
         "decode_conv2"}


def input_image_map(model, images, classes, layer):
    """Planted failure: a 'Grad-CAM' that is the input image itself (mean |colour|), whatever the weights."""
    return np.abs(np.asarray(images)).mean(axis=-1)


@pytest.fixture(scope="module")
def sanity_run(few_epochs_run, tmp_path_factory):
    """A copy of the few-epochs run analysed with --methods decode,sanity (small settings), Grad-CAM at conv1
    replaced by the planted failure (conv2's is the real one). About 60 s of sanity checks on 2 cores shared with
    other jobs (load 7), 80 s with the analysis."""
    from keras_latent.analysis import sanity_method

    run_dir = copy_folder(few_epochs_run, tmp_path_factory.mktemp("sanity"))
    real = sanity_method.sanity_probe_for

    def planted(analysis_probe, layers, decode_paths):
        probe = real(analysis_probe, layers, decode_paths)
        cam = probe.grad_cam
        return dataclasses.replace(probe, grad_cam=lambda m, x, c, layer: (
            input_image_map(m, x, c, layer) if layer == "conv1" else cam(m, x, c, layer)))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sanity_method, "sanity_probe_for", planted)
        code, _, _ = run_main(analyze.main, [run_dir, "--methods", "decode,sanity", *SMALL, "-q"])
    assert code == 0
    return run_dir


def _sanity(run_dir) -> dict:
    return read_json(layout.analysis_file(run_dir, layout.SANITY_SUMMARY), layout.SANITY_SUMMARY)


@pytest.mark.slow
def test_sanity_method_writes_sanity_json_and_its_figures(sanity_run):
    summary = _sanity(sanity_run)  # checked against its schema as it is read
    assert set(summary["verdicts"]) == VIEWS
    assert summary["settings"]["images"] == 8 and summary["settings"]["seed"] == 0  # the run's seed
    assert summary["layers"] == ["conv1", "conv2"] and summary["decode_paths"]
    assert summary["timings_s"] and all(t >= 0 for t in summary["timings_s"].values())
    assert summary["seconds"] >= sum(summary["timings_s"].values()) - 1
    for name, relative in summary["figures"].items():
        assert layout.SANITY_FIGURE.match(os.path.basename(relative)) == {"figure": name}
        assert os.path.isfile(os.path.join(sanity_run, relative))
    assert {"cascade_gradcam_conv1", "deletion_smoothgrad", "channel_deletion_conv2", "trunk_control_conv1"} <= set(
        summary["figures"])
    with open(layout.analysis_file(sanity_run, layout.ANALYSIS_SUMMARY), encoding="utf-8") as f:
        analysis = json.load(f)
    assert analysis["methods"] == ["decode", "sanity"] and analysis["seconds"]["sanity"] > 0
    assert analysis["sanity"]["verdicts"] == summary["verdicts"]


@pytest.mark.slow
def test_planted_failure_is_flagged_and_the_real_view_passes(sanity_run):
    """The input image as 'Grad-CAM' at conv1 does not change when every weight is re-initialized nor with the class:
    both checks fail and so does the view; the real Grad-CAM at conv2, same images and settings, passes both."""
    summary = _sanity(sanity_run)
    planted, real = summary["gradcam"]["conv1"], summary["gradcam"]["conv2"]
    assert planted["cascading"]["verdict"] == "fail" and planted["random_class"]["verdict"] == "fail"
    assert planted["cascading"]["tested_similarity"]["mean"] == pytest.approx(1.0)
    assert summary["verdicts"]["gradcam_conv1"]["verdict"] == "fail"
    assert real["cascading"]["verdict"] == "pass", real["cascading"]["tested_similarity"]
    report = open(build_report(sanity_run), encoding="utf-8").read()
    row = re.search(r'<tr data-sanity-view="gradcam_conv1".*?</tr>', report, re.S).group(0)
    assert '<td data-col="verdict"><strong>fail</strong>' in row and "cascading fail" in html.unescape(row)


@pytest.mark.slow
def test_report_section_reads_sanity_json_and_figures_only(sanity_run, tmp_path):
    """The section renders from the files: without model.keras, a verdict row and the numbers for every view, every
    figure embedded, the fill named, a per-channel table per decoded layer, the timings."""
    run_dir = copy_folder(sanity_run, tmp_path)
    os.remove(layout.MODEL.path(run_dir))
    page = html.unescape(open(build_report(run_dir), encoding="utf-8").read())
    section = page[page.index('<section id="sanity">'):page.index('<section id="tuning">')]
    summary = _sanity(run_dir)
    for view, verdict in summary["verdicts"].items():
        assert f'data-sanity-view="{view}"' in section and verdict["line"] in section
    assert section.count("<img ") == len(summary["figures"])
    assert "training mean colour" in section and "centre prior" in section and "permutation p" in section
    assert "relative feature error" in section and "flagged 'shows the decoder'" in section
    for layer in ("conv1", "conv2"):
        assert f'class="sanity-channels" data-layer="{layer}"' in section
    assert 'id="sanity-timings"' in section and "randomized-trunk control, conv1" in section


@pytest.mark.slow
def test_damaged_sanity_json_is_one_line(sanity_run, tmp_path):
    run_dir = copy_folder(sanity_run, tmp_path)
    path = layout.analysis_file(run_dir, layout.SANITY_SUMMARY)
    summary = json.load(open(path))
    summary["verdicts"]["smoothgrad"]["verdict"] = "probably fine"
    json.dump(summary, open(path, "w"))
    with pytest.raises(UsageError) as err:
        build_report(run_dir)
    message = str(err.value)
    assert "\n" not in message and "field 'verdicts.smoothgrad.verdict' must be one of pass, weak, fail" in message
    assert f"--methods {layout.SANITY_METHODS}" in message
    summary["verdicts"]["smoothgrad"]["verdict"] = "weak"
    summary["figures"]["cascade_smoothgrad"] = "../../etc/passwd"
    json.dump(summary, open(path, "w"))
    with pytest.raises(UsageError, match="figures.cascade_smoothgrad"):
        _sanity(run_dir)


def test_report_without_sanity_json_names_the_command(copy_run):
    run_dir = copy_run()
    shutil.rmtree(layout.analysis_dir(run_dir), ignore_errors=True)
    page = html.unescape(open(build_report(run_dir), encoding="utf-8").read())
    section = page[page.index('<section id="sanity">'):page.index('<section id="tuning">')]
    assert "No sanity checks yet" in section
    assert f"python -m keras_latent.analyze {run_dir} --methods {layout.SANITY_METHODS}" in section


def test_sanity_flags_are_validated(capsys, copy_run):
    run_dir = copy_run()
    code, _, err = run_main(analyze.main, [run_dir, "--methods", "sanity", "--sanity-images", "1"], capsys)
    assert code == 2 and err.strip() == "error: --sanity-images must be >= 2, got 1"
    assert not os.path.exists(layout.analysis_dir(run_dir))


def test_sanity_probe_for_refuses_a_probe_it_does_not_know():
    from keras_latent.analysis.sanity_method import sanity_probe_for

    class OtherProbe:
        kind = "other"

    with pytest.raises(UsageError, match="got a probe of kind 'other'"):
        sanity_probe_for(OtherProbe(), ["conv1"], {})
