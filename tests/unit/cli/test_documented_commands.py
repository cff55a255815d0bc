"""Every command the README's Commands table documents exists as written: each `make` target is
in the Makefile, each `stratops` sub-command answers --help, and every option its row names is
one that sub-command takes. Each one is also run, as the desk user who would type it, by the
e2e walkthrough (tests/e2e/test_readme_commands.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docs import example_commands, shell_commands, table_commands
from stratops.cli.main import app

ROOT = Path(__file__).resolve().parents[3]
ROWS = [d.command for d in table_commands()]


def test_the_table_is_read():
    """Every row of the table gives its commands, whole: a row whose backticks the parser
    missed would leave its command unchecked here and unrun in the e2e walkthrough."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]  # after the header
    assert rows and all(line.startswith("| `") for line in rows), [r for r in rows if not r.startswith("| `")]
    got = table_commands()
    assert {d.context for d in got} == {r.replace("\\|", "|") for r in rows}
    for d in got:
        assert d.command.split()[0] in ("make", "stratops", "kill"), d
        assert d.command.count("[") == d.command.count("]"), f"unbalanced brackets: {d.command}"
    # the cell "`stratops kill --selector …` / `kill --all [-A] --reason …`" is two commands
    assert "kill --all [-A] --reason …" in ROWS and "stratops kill --selector desk=fx --reason …" in ROWS


def test_shell_blocks_and_example_headers_are_read():
    sh = [d.command for d in shell_commands()]
    assert "make demo" in sh and "make test" in sh
    # a continued line is one command; a trailing comment is not part of it
    assert any(
        c.startswith("helm install stratops charts/stratops") and c.endswith("--set image.tag=0.1.0") for c in sh
    ), sh
    assert 'stratops runbook run broker-failover mean-revert -n desk --reason "prime-a acks silent" --dry-run' in sh
    assert not [c for c in sh if "#" in c or c.startswith(("symptom", "action"))], sh
    [header] = example_commands()
    assert (
        header.command.startswith("kubectl apply -f examples/strategy.yaml")
        and header.where == "examples/strategy.yaml"
    )


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
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", helptext), (
            f"{command}: `stratops {' '.join(path)}` has no option {option}"
        )
