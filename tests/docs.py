"""The commands the README and the examples document, read from them: the README's Commands
table, its shell blocks, and the command in an example's header. The unit tests check each one
exists with the options it names; the e2e walkthrough runs each one (tests/e2e/test_readme_commands.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Documented:
    command: str  # as written, e.g. "stratops kill STRATEGY --reason …"
    where: str  # "README Commands table", "README shell block", "examples/strategy.yaml"
    context: str  # the text around it (the table row, the block), where the options it names are explained


def table_commands(readme: str | None = None) -> list[Documented]:
    """Each `...` span in the command column of the README's Commands table ("kill --selector …
    / kill --all …" is two)."""
    text = readme if readme is not None else (ROOT / "README.md").read_text()
    table = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    out = []
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        cells = re.split(r"(?<!\\)\|", line)
        for c in re.findall(r"`([^`]+)`", cells[1]):
            out.append(Documented(c.replace("\\|", "|"), "README Commands table", line.replace("\\|", "|")))
    return out


def shell_commands(readme: str | None = None) -> list[Documented]:
    """Each command line of the README's ```sh blocks (a trailing backslash continues it; a
    comment after it is dropped; a line that is all comment is output shown, not a command)."""
    text = readme if readme is not None else (ROOT / "README.md").read_text()
    out = []
    for block in re.findall(r"^```(?:sh|bash|console)\n(.*?)^```", text, re.M | re.S):
        pending = ""
        for raw in block.splitlines():
            line = raw.strip()
            if not pending and (not line or line.startswith("#")):
                continue
            line = re.sub(r"\s+#\s.*$", "", line)  # a comment after the command
            if line.endswith("\\"):
                pending += line[:-1].strip() + " "
                continue
            out.append(Documented(pending + line, "README shell block", block))
            pending = ""
    return out


def example_commands() -> list[Documented]:
    """Commands in the examples' header comments ("#   kubectl apply -f ...")."""
    out = []
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        for line in path.read_text().splitlines():
            m = re.match(r"#\s+((?:kubectl|stratops|make|helm) .+)$", line)
            if m:
                out.append(Documented(m.group(1).strip(), str(path.relative_to(ROOT)), line))
    return out


def documented() -> list[Documented]:
    return table_commands() + shell_commands() + example_commands()


def _leading_words(text: str) -> list[str]:
    path = []
    for w in text.split():
        if not re.fullmatch(r"[a-z][a-z-]*", w):
            break
        path.append(w)
    return path


def subcommand_paths(command: str) -> list[list[str]]:
    """The sub-command paths a documented stratops command names, without `stratops`:
    "stratops gate sign GATE ITEM… | --all …" -> [["gate", "sign"]]; an alternative after a
    top-level `|` that is a word replaces the last one: "stratops incident list [--open] |
    show NAME | ack NAME" -> [["incident", "list"], ["incident", "show"], ["incident", "ack"]]."""
    parts, depth, cur = [], 0, ""
    for ch in command:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "|" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    first = _leading_words(parts[0].removeprefix("stratops "))
    paths = [first]
    for alt in parts[1:]:
        words = _leading_words(alt)
        if words and first:
            paths.append(first[:-1] + words[:1])
    return paths


def options(text: str) -> set[str]:
    """The command-line options TEXT names (-n, --reason, ...)."""
    return set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", text))
