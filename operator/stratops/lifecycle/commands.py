"""Human commands: annotations `stratops.io/<kind>` on a Strategy, each a JSON object whose
`by` the admission policy checks is the requesting user's. Parsed here (pure); decided in
stratops.lifecycle.decide."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

COMMANDS = ("kill", "throttle", "rollback", "resume", "reconciliation", "failover", "rearm", "runbook", "release")
MAX_EVIDENCE = 4096  # a reconciliation's evidence: what was compared, or a link to it
ANNOTATION_PREFIX = "stratops.io/"


@dataclass(frozen=True)
class Command:
    """A human command given as an annotation `stratops.io/<kind>` on the Strategy."""

    kind: str
    id: str
    reason: str
    by: str
    fields: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def annotation(self) -> str:
        return ANNOTATION_PREFIX + self.kind


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def command_value(by: str, /, **fields: Any) -> str:
    """An annotation value as the admission policy accepts it: `{"by": "<user>", …}`, `by` first."""
    return json.dumps({"by": by, **{k: v for k, v in fields.items() if k != "by"}}, ensure_ascii=False)


def new_command(by: str, /, **fields: Any) -> dict[str, Any]:
    """A command's fields as the CLI gives them: BY first, a fresh `id` and the time (unless
    given). Without an id, a command's id is its text, and the same text given again before the
    operator's next pass is taken for the first one, still on the object after a crash, and
    dropped (see parse_command)."""
    return {"by": by, **fields, "id": fields.get("id") or uuid.uuid4().hex[:12], "at": fields.get("at") or _now()}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def parse_command(kind: str, raw: str) -> Command:
    """Parse an annotation value: JSON {"by", "reason", "id", ...}. Its `by` is the requesting
    user's (stratops.admission.policies checks the value begins {"by": "<user>"}); a value
    with duplicate keys could show the operator another `by` than the one checked, so it is
    refused, and a command without `by` is not attributable and is refused. Its id is its `id`
    field, or a hash of its text: what tells a command given again from the same one left on
    the object by a crash between carrying it out and removing it (status.handledCommands)."""
    cid = hashlib.sha256(raw.encode()).hexdigest()[:12]
    try:
        value = json.loads(raw, object_pairs_hook=_unique_keys)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        return Command(
            kind,
            cid,
            "",
            "",
            {},
            f"annotation {ANNOTATION_PREFIX}{kind} is not a JSON object with a unique "
            '"by" (who gives it) and a "reason"; use the stratops CLI',
        )
    reason = str(value.get("reason") or "").strip()
    by = str(value.get("by") or "").strip()
    cid = str(value.get("id") or cid)
    fields = {k: v for k, v in value.items() if k not in ("reason", "by", "id")}
    error = None
    if not by:
        error = (
            f'annotation {ANNOTATION_PREFIX}{kind}: not attributable: it must begin {{"by": "<you>", …}} '
            "(the stratops CLI writes it so)"
        )
    elif kind == "reconciliation":
        if value.get("result") not in ("Matched", "Mismatched", "Failed"):
            error = f"annotation {ANNOTATION_PREFIX}{kind}: result must be Matched, Mismatched or Failed"
        elif not str(value.get("evidence") or "").strip():
            error = f"annotation {ANNOTATION_PREFIX}{kind}: evidence is required (what was compared, or a link)"
        elif len(str(value.get("evidence"))) > MAX_EVIDENCE:
            error = (
                f"annotation {ANNOTATION_PREFIX}{kind}: evidence is {len(str(value.get('evidence')))} characters, at "
                f"most {MAX_EVIDENCE}: link to the full evidence"
            )
    elif kind == "runbook" and not isinstance(value.get("run"), dict):
        error = f"annotation {ANNOTATION_PREFIX}{kind}: run (the runbook run's record) is required"
    elif kind == "release" and (problem := _book_problem(value.get("book"))):
        error = f"annotation {ANNOTATION_PREFIX}{kind}: {problem}"
    elif kind == "failover" and value.get("to") not in ("backup", "primary"):
        error = f"annotation {ANNOTATION_PREFIX}{kind}: to must be backup or primary"
    elif not reason and kind not in ("ack",):
        error = f'annotation {ANNOTATION_PREFIX}{kind}: a reason is required, e.g. {{"reason": "broker rejects"}}'
    return Command(kind, cid, reason, by, fields, error)


def _book_problem(book: Any) -> str | None:
    """Why BOOK is not a book (signed quantity by instrument), or None."""
    if not isinstance(book, dict) or not book:
        return 'book is required: the reconciled position by instrument, e.g. {"EURUSD": 250000}'
    if len(book) > 200:
        return f"book has {len(book)} instruments, at most 200"
    for instrument, q in book.items():
        if not instrument or isinstance(q, bool) or not isinstance(q, (int, float)) or q != q or abs(q) == float("inf"):
            return f"book[{instrument!r}] must be a finite number, got {q!r}"
    return None


def commands_from_annotations(annotations: dict[str, str] | None) -> tuple[Command, ...]:
    ann = annotations or {}
    return tuple(parse_command(k, ann[ANNOTATION_PREFIX + k]) for k in COMMANDS if ANNOTATION_PREFIX + k in ann)
