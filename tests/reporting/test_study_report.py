"""The study's report.html (reporting.study_report) from conftest's tiny study, the links between it and its runs'
reports, `python -m keras_latent.report STUDY`, and the pairs within noise of the best in a run report."""
import os
import re
import shutil

import pytest
from helpers import repeated_trial, run_main

from keras_latent.report import main
from keras_latent.reporting.build import build_report
from keras_latent.runs import layout
from keras_latent.tuning.results import write_results


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def links(page: str) -> list[str]:
    return re.findall(r'<a href="([^"]+)"', page)


@pytest.mark.slow  # conftest's tiny study trains 4 runs
def test_study_report_holds_the_conclusions_tables_and_both_figures(tiny_study):
    folder, summary = tiny_study["folder"], tiny_study["summary"]
    page = read(summary["report"])
    assert summary["report"] == layout.STUDY_REPORT.path(folder)
    for sentence in summary["conclusions"]:
        assert f">{sentence}</p>" in page.replace("&#39;", "'")
    assert 'data-comparison="two-output vs classifier-only"' in page
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == 2 and all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(src|href)="https?:', page)  # self-contained
    for variant in ("classifier-only", "two-output"):
        assert f'data-variant="{variant}"' in page
    assert page.count('<tr data-class="') == len(summary["comparisons"][0]["per_class_accuracy"])


@pytest.mark.slow  # conftest's tiny study trains 4 runs
def test_study_report_links_every_run_report_and_each_run_report_links_back(tiny_study):
    folder = tiny_study["folder"]
    hrefs = links(read(layout.STUDY_REPORT.path(folder)))
    expected = [layout.REPORT_FILE.path(layout.study_run_dir(folder, v, s)) for s in (0, 1)
                for v in ("classifier-only", "two-output")]
    assert [os.path.normpath(os.path.join(folder, h)) for h in hrefs] == expected
    for run_report in expected:
        back = re.search(r'id="study-link">.*?<a href="([^"]+)"', read(run_report), re.S).group(1)
        assert os.path.normpath(os.path.join(os.path.dirname(run_report), back)) == layout.STUDY_REPORT.path(folder)


@pytest.mark.slow  # conftest's tiny study trains 4 runs
def test_report_command_rebuilds_a_study_report_and_refuses_run_only_flags(tiny_study, tmp_path, capsys):
    folder = shutil.copytree(tiny_study["folder"], tmp_path / "study")
    os.remove(layout.STUDY_REPORT.path(str(folder)))
    out = tmp_path / "elsewhere" / "study.html"
    os.makedirs(out.parent)
    code, printed, _ = run_main(main, [str(folder), "--out", str(out)], capsys)
    assert code == 0 and str(out) in printed
    for href in links(read(str(out))):  # relative to where the report was written
        assert os.path.isfile(os.path.join(out.parent, href)), href
    code, _, err = run_main(main, [str(folder), "--tuning", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "is a study folder: --tuning and --analyze are for a run" in err


def test_a_run_of_its_own_has_no_study_link(copy_run):
    assert 'id="study-link"' not in read(build_report(copy_run()))


def test_run_report_names_the_pairs_within_noise_of_the_best(copy_run, tmp_path):
    tuning = str(tmp_path / "tuning")
    write_results([repeated_trial("0", 1, 2, [0.50, 0.53, 0.51]), repeated_trial("1", 1, 0, [0.49, 0.53, 0.50]),
                   repeated_trial("2", 2, 2, [0.40, 0.42, 0.41])], tuning)
    page = read(build_report(copy_run(), tuning_dir=tuning))
    sentence = " ".join(re.search(r'id="within-noise">(.*?)</p>', page, re.S).group(1).split())
    assert sentence.startswith("Within noise of the best over 3 executions") and "(1, 0): -0.7 points" in sentence
    assert "(2, 2)" not in sentence
    assert re.search(r'data-trial="2">.*?data-col="within_noise">no<', page, re.S)
