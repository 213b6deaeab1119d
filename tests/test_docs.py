"""The documentation against the code: every flag in docs/cli.md, every run-folder file in docs/run-folder.md,
README.md short with its Quickstart commands verbatim, and README's links into docs/ pointing at real pages.

To document a new command, add its module to COMMANDS and a `## ...` section to docs/cli.md whose heading
names the module (e.g. `keras_latent.train`); the test then lists any of its flags the section lacks.
"""
import argparse
import importlib
import os
import re

import pytest
from helpers import REPO

from keras_latent.runs import layout

COMMANDS = ("keras_latent.train", "keras_latent.analyze", "keras_latent.report", "keras_latent.export",
            "keras_latent.search_weights", "keras_latent.study", "keras_latent.explore", "keras_latent.attach")
CLI_DOC = os.path.join(REPO, "docs", "cli.md")
RUN_FOLDER_DOC = os.path.join(REPO, "docs", "run-folder.md")
README = os.path.join(REPO, "README.md")
README_MAX_LINES = 250
QUICKSTART = ("pip install -r requirements.txt && python -m keras_latent.train",
              "pip install -r requirements.txt pytest==9.0.3 && python -m pytest -q")
DOCUMENTED_ENTRIES = (layout.RUN_FILES + layout.ANALYSIS_FILES + layout.TUNING_FILES + layout.STUDY_FILES
                      + (layout.VARIANT_DIR, layout.STUDY_RUN))


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def sections(markdown: str) -> dict[str, str]:
    """{`## ` heading line: the text up to the next `## ` heading} (code blocks are not special-cased)."""
    parts = re.split(r"^(## .*)$", markdown, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def mentioned(word: str, text: str) -> bool:
    """`word` appears in `text` on its own: `-q` does not count inside `--quiet`, nor `--out` inside `--out-dir`."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def command_words(module: str) -> list[str]:
    """Every option string (`--flag`, `-q`) and positional name (`RUN_FOLDER`) of the module's parser."""
    parser = importlib.import_module(module).build_parser()
    words = []
    for action in parser._actions:
        if action.option_strings:
            words += action.option_strings
        elif action.help is not argparse.SUPPRESS:
            words.append((action.metavar or action.dest).upper())
    return words


@pytest.mark.parametrize("module", COMMANDS)
def test_cli_doc_lists_every_flag(module):
    matching = [body for heading, body in sections(read(CLI_DOC)).items() if module in heading]
    assert len(matching) == 1, f"docs/cli.md needs one '## ' section whose heading names {module}"
    missing = [word for word in command_words(module) if not mentioned(word, matching[0])]
    assert not missing, f"docs/cli.md's section on {module} does not mention: {', '.join(missing)}"


def test_run_folder_doc_lists_every_file():
    text = read(RUN_FOLDER_DOC)
    missing = [entry.name for entry in DOCUMENTED_ENTRIES if f"`{entry.name}`" not in text]
    assert not missing, f"docs/run-folder.md does not list (as `name`): {', '.join(missing)}"


def test_readme_is_short_and_has_the_quickstart_commands():
    text = read(README)
    lines = len(text.splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES}): move detail to docs/"
    blocks = re.findall(r"^```bash\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    for command in QUICKSTART:
        assert f"{command}\n" in blocks, f"README.md lacks a code block holding exactly: {command}"


def test_readme_links_into_docs_exist():
    links = re.findall(r"\]\((docs/[^)#\s]+\.md)(?:#[^)]*)?\)", read(README))
    assert links, "README.md links to no docs/ page"
    missing = sorted({link for link in links if not os.path.isfile(os.path.join(REPO, link))})
    assert not missing, f"README.md links to missing pages: {', '.join(missing)}"


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub makes for a page's headings (lower case, punctuation dropped, spaces to hyphens,
    repeats numbered), outside code blocks."""
    anchors, seen, fenced = set(), {}, False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            anchors.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
            seen[slug] = seen.get(slug, 0) + 1
    return anchors


def markdown_files() -> list[str]:
    found = []
    for root, dirs, names in os.walk(REPO):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("saved_models", "node_modules")]
        found += [os.path.join(root, n) for n in names if n.endswith(".md")]
    return sorted(found)


def test_every_markdown_anchor_resolves():
    """Every `[text](page.md#anchor)` or `[text](#anchor)` link in the repository's markdown names a heading."""
    broken = []
    for path in markdown_files():
        for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", read(path)):
            if target.startswith("http") or (target and not target.endswith(".md")):
                continue
            page = os.path.normpath(os.path.join(os.path.dirname(path), target)) if target else path
            if not os.path.isfile(page) or anchor not in github_anchors(read(page)):
                broken.append(f"{os.path.relpath(path, REPO)}: {target}#{anchor}")
    assert broken == []
