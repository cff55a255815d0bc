"""Every command the README's Commands table documents exists as written: each `make` target is
in the Makefile, each `stratops` sub-command answers --help, and every option its row names is
one that sub-command takes. (What each command does is tested where it acts: the e2e suite.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stratops.cli.main import app

ROOT = Path(__file__).resolve().parents[2]


def _rows() -> list[str]:
    text = (ROOT / "README.md").read_text()
    table = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    return [re.split(r"(?<!\\)\|", line)[1].strip() for line in table.splitlines() if line.startswith("| `")]


def _commands(cell: str) -> list[str]:
    """The commands in a table cell: each `...` span ("kill --selector ... / kill --all ..." is two)."""
    return [c.replace("\\|", "|") for c in re.findall(r"`([^`]+)`", cell)]


ROWS = [c for cell in _rows() for c in _commands(cell)]


def test_the_table_is_read():
    assert len(ROWS) > 40 and any(r.startswith("stratops drill") for r in ROWS), ROWS


@pytest.mark.parametrize("command", [r for r in ROWS if r.startswith("make ")], ids=lambda c: c)
def test_make_target_exists(command):
    target = command.split()[1]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"{command}: no target {target} in the Makefile"


def _subcommand(words: list[str]) -> list[str]:
    """The sub-command path at the head of WORDS (stratops gate sign GATE ... -> gate sign)."""
    path: list[str] = []
    for w in words:
        if not re.fullmatch(r"[a-z][a-z-]*", w):
            break
        res = CliRunner().invoke(app, [*path, w, "--help"])
        if res.exit_code != 0:
            break
        path.append(w)
    return path


@pytest.mark.parametrize("command", [r for r in ROWS if r.startswith("stratops ")], ids=lambda c: c)
def test_stratops_command_takes_the_documented_options(command):
    words = command.split()[1:]
    if words[0].startswith("--"):  # stratops --version, --install-completion
        res = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "300"})
        assert words[0] in res.output, f"{command}: stratops has no {words[0]}"
        return
    path = _subcommand(words)
    assert path, f"{command}: no such stratops command"
    helptext = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "300"}).output
    for option in re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", command):
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", helptext), \
            f"{command}: `stratops {' '.join(path)}` has no option {option}"
