"""A soak's history: one JSON line per record, in the order they happened.

Times are wall-clock seconds (time.time()): the API server's audit log and the operator's logs
are stamped with the wall clock too, and the checker lines them all up."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Who recorded it: the desk's driver, the nemesis (faults), the observer (samples of each
#: strategy), the API server (writes, from its audit log), a replica (its peering transitions),
#: or the end of the run (final reads: events, audit chains).
PROCESSES = ("driver", "nemesis", "observer", "apiserver", "replica", "final")
#: invoke: begun; ok: done; fail: refused or failed; info: a fact seen.
TYPES = ("invoke", "ok", "fail", "info")


@dataclass(frozen=True)
class Record:
    t: float
    process: str
    type: str
    f: str
    strategy: str | None = None
    value: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        who = f" {self.strategy}" if self.strategy else ""
        detail = json.dumps(self.value, sort_keys=True, default=str)
        return f"{self.t:.3f} {self.process:<9} {self.type:<6} {self.f}{who} {detail[:200]}"


def dump(records: Iterable[Record], path: Path) -> None:
    with path.open("w") as out:
        for r in records:
            out.write(json.dumps(asdict(r), sort_keys=True, default=str) + "\n")


def load(path: Path) -> list[Record]:
    return list(read_lines(path.read_text().splitlines()))


def read_lines(lines: Iterable[str]) -> Iterator[Record]:
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            yield Record(
                t=float(raw["t"]),
                process=str(raw["process"]),
                type=str(raw["type"]),
                f=str(raw["f"]),
                strategy=raw.get("strategy"),
                value=dict(raw.get("value") or {}),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"history line {n}: not a record ({e})") from e


def ordered(records: Iterable[Record]) -> list[Record]:
    """By time; records at the same moment keep the order they were recorded in."""
    return sorted(records, key=lambda r: r.t)
