"""Persist audit chains (stratops.audit) in AuditSegment objects, which only the operator writes.

Best effort, and never on the kill path's way: the executor appends after the status write,
which already carries the new head and the decision's lines (status.audit.pending), so a
failure here loses nothing: the lines are retried in the background, and after a restart from
the status. Each failure is counted (stratops_audit_write_failures_total) and the lines waiting
are a gauge (stratops_audit_pending_entries): the chart's PrometheusRule alerts on both.

A segment rolls over (a new AuditSegment, index + 1) before it reaches SEGMENT_BYTES, so no
write ever meets the object size limit. Appending is idempotent: lines whose seq the trail
already holds are skipped.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import threading
from collections.abc import Iterable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from stratops import API_VERSION, GROUP, VERSION
from stratops import metrics as M
from stratops.audit import SEGMENT_BYTES, Head, digest
from stratops.audit import entry_seq as _seq

log = logging.getLogger("stratops.audit")
PLURAL = "auditsegments"
#: A segment this process wrote or listed is held for the next append only up to this size: a
#: subject's latest segment grows towards SEGMENT_BYTES, so holding each one whole would grow
#: towards 256 KiB a strategy (2.5 GiB at 10,000). A larger one is read again at its next append
#: (one request per decision of a subject with a long trail; a new one's appends read nothing).
REMEMBERED_SEGMENT_BYTES = 8 * 1024
LABEL_KIND, LABEL_SUBJECT = f"{GROUP}/audit-kind", f"{GROUP}/audit-subject"


def subject_label(name: str) -> str:
    """The subject's label value: its name cut to a label's 63 characters, ending as a label
    must (alphanumeric). Names that share it are told apart by spec.subject."""
    return name[:63].rstrip("-.")


def segment_name(kind: str, name: str, index: int) -> str:
    base = f"{kind.lower()}-{name}"
    if len(base) > 240:
        base = base[:228] + "-" + hashlib.sha256(base.encode()).hexdigest()[:10]
    return f"{base}-{index:06d}"


class AuditLog:
    """The appender, with its retry queue (one writer per subject: the subject's daemon)."""

    def __init__(self, custom: client.CustomObjectsApi) -> None:
        self.custom = custom
        self._latest: dict[tuple[str, str, str], int] = {}
        self._pending: dict[tuple[str, str, str], list[str]] = {}
        #: Per subject, the highest seq this process has seen stored in its trail.
        self._confirmed: dict[tuple[str, str, str], int] = {}
        #: Per subject, its latest segment (index, body) as this process last wrote or listed it
        #: (body None: known not to exist yet): the next append writes over it without reading
        #: it again. A write by anyone since is a 409, and the trail is then looked up again.
        self._segment: dict[tuple[str, str, str], tuple[int, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()

    def confirmed(self, namespace: str, kind: str, name: str) -> int:
        """The highest seq this process knows to be in the subject's trail (0: none known)."""
        return self._confirmed.get((namespace, kind, name), 0)

    def catch_up(self, namespace: str, kind: str, name: str, head: dict[str, Any] | None) -> None:
        """Write the lines a subject's status holds (HEAD: its `status.audit`) when its head is
        beyond what this process knows to be in the trail (idempotent): after a restart, or a
        takeover from a replica that died between the status write that holds them and the
        trail's (seen in the long soak: a standby that had synced once before its pause left the
        dead leader's last entries out of the chain)."""
        pending = (head or {}).get("pending")
        if pending and int((head or {}).get("seq") or 0) > self.confirmed(namespace, kind, name):
            self.append(namespace, kind, name, pending)

    def _confirm(self, key: tuple[str, str, str], seq: int) -> None:
        with self._lock:
            self._confirmed[key] = max(self._confirmed.get(key, 0), seq)

    def append(self, namespace: str, kind: str, name: str, lines: Iterable[str]) -> bool:
        """Add LINES to the subject's trail; False (queued for retry, counted) when it fails."""
        key = (namespace, kind, name)
        with self._lock:
            lines = [*self._pending.pop(key, []), *lines]
        if not lines:
            return True
        try:
            self._write(key, lines)
        except Exception as e:  # never the decision's failure: counted, kept, retried
            M.AUDIT_FAILURES.labels(namespace).inc()
            log.warning(
                "[%s/%s] audit entries not written yet (%s): kept, retried",
                namespace,
                name,
                f"{e.status} {e.reason}" if isinstance(e, ApiException) else e,
            )
            with self._lock:
                self._pending[key] = sorted(set(self._pending.get(key, [])) | set(lines), key=_seq)
            return False
        finally:
            self._gauge()
        return True

    def retry(self) -> None:
        """Write again what failed (called periodically by the operator)."""
        with self._lock:
            keys = list(self._pending)
        for key in keys:
            self.append(*key, [])

    def pending(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._pending.values())

    def _gauge(self) -> None:
        M.AUDIT_PENDING.set(self.pending())

    def _write(self, key: tuple[str, str, str], lines: list[str]) -> None:
        namespace, kind, name = key
        for _ in range(8):
            index = self._latest.get(key)
            if index is None:
                index = self._find_latest(namespace, kind, name)  # and remembers it
            known = self._segment.get(key)
            seg = (
                known[1]
                if known is not None and known[0] == index
                else self._get(namespace, segment_name(kind, name, index))
            )
            existing = list((seg or {}).get("spec", {}).get("entries") or [])
            last = max([_seq(x) for x in existing] or [self._last_before(namespace, kind, name, index)])
            # Each seq once, in order: the same lines may come from the retry queue and a status.
            new = sorted({_seq(x): x for x in lines if _seq(x) > last}.values(), key=_seq)
            if not new:
                self._confirm(key, last)
                return
            size = _entries_bytes(existing + new)
            if seg is not None and existing and size > SEGMENT_BYTES:
                self._latest[key] = index + 1  # full: the trail goes on in the next segment
                self._segment.pop(key, None)
                continue
            body = {
                "apiVersion": API_VERSION,
                "kind": "AuditSegment",
                "metadata": {
                    "name": segment_name(kind, name, index),
                    "namespace": namespace,
                    "labels": {LABEL_KIND: kind.lower(), LABEL_SUBJECT: subject_label(name)},
                },
                "spec": {"subject": {"kind": kind, "name": name}, "index": index, "entries": existing + new},
            }
            try:
                if seg is None:
                    out = self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
                else:
                    body["metadata"]["resourceVersion"] = seg["metadata"]["resourceVersion"]
                    out = self.custom.replace_namespaced_custom_object(
                        GROUP, VERSION, namespace, PLURAL, body["metadata"]["name"], body
                    )
                self._remember(key, index, out)
                self._confirm(key, _seq(new[-1]))
                return
            except ApiException as e:
                self._segment.pop(key, None)
                if e.status != 409:
                    raise
                self._latest.pop(key, None)  # written meanwhile (another replica, a restart): look again
        raise RuntimeError(f"audit segment of {kind}/{name} in {namespace}: too many conflicts")

    def tail(
        self, namespace: str, kind: str, name: str, looking_for: tuple[str, ...], segments: int = 20
    ) -> tuple[Head, dict[str, Any] | None]:
        """The head of the subject's trail as stored, and its last entry whose reason is one of
        LOOKING_FOR (newest segments first, at most SEGMENTS of them): how a re-created
        Strategy continues its chain and learns whether it was latched."""
        found = None
        head = Head()
        stored = subject_segments(self.custom, namespace, kind, name)
        self._found(namespace, kind, name, stored)
        for n, seg in enumerate(reversed(stored)):
            entries = list(seg["spec"].get("entries") or [])
            if n == 0 and entries:
                head = Head(_seq(entries[-1]), digest(entries[-1]))
            for line in reversed(entries):
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e.get("reason") in looking_for:
                    return head, e
            if n + 1 >= segments:
                break
        return head, found

    def _get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def _find_latest(self, namespace: str, kind: str, name: str) -> int:
        return self._found(namespace, kind, name, subject_segments(self.custom, namespace, kind, name))

    def _found(self, namespace: str, kind: str, name: str, segments: list[dict[str, Any]]) -> int:
        """What a listing of the subject's SEGMENTS (in index order) says of its latest one,
        remembered for the next append; the latest index."""
        key = (namespace, kind, name)
        index = int(segments[-1]["spec"]["index"]) if segments else 0
        with self._lock:
            self._latest[key] = index
            if not segments:
                self._segment[key] = (index, None)
            elif _small(segments[-1]):
                self._segment[key] = (index, copy.deepcopy(segments[-1]))
            else:
                self._segment.pop(key, None)
        return index

    def _remember(self, key: tuple[str, str, str], index: int, written: Any) -> None:
        if isinstance(written, dict) and (written.get("metadata") or {}).get("resourceVersion") and _small(written):
            self._segment[key] = (index, copy.deepcopy(written))
        else:
            self._segment.pop(key, None)

    def _last_before(self, namespace: str, kind: str, name: str, index: int) -> int:
        if index == 0:
            return 0
        prev = self._get(namespace, segment_name(kind, name, index - 1))
        return max([_seq(x) for x in ((prev or {}).get("spec", {}).get("entries") or [])] or [0])


def subject_segments(custom: client.CustomObjectsApi, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
    # The subject's label narrows the list to it (and any name sharing its first 63 characters):
    # one subject's segments, not the namespace's, however many strategies it holds.
    items = custom.list_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        label_selector=f"{LABEL_KIND}={kind.lower()},{LABEL_SUBJECT}={subject_label(name)}",
    )["items"]
    return sorted(
        (s for s in items if s["spec"]["subject"] == {"kind": kind, "name": name}), key=lambda s: s["spec"]["index"]
    )


def trails(segments: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str], list[str]]:
    """Every subject's lines, in segment order: (namespace, kind, name) -> lines."""
    by: dict[tuple[str, str, str], list[tuple[int, list[str]]]] = {}
    for s in segments:
        subj = s["spec"]["subject"]
        by.setdefault((s["metadata"]["namespace"], subj["kind"], subj["name"]), []).append(
            (int(s["spec"]["index"]), list(s["spec"].get("entries") or []))
        )
    return {k: [line for _, lines in sorted(v) for line in lines] for k, v in by.items()}


def _small(segment: dict[str, Any]) -> bool:
    """Whether SEGMENT is small enough to hold for the next append (REMEMBERED_SEGMENT_BYTES)."""
    return _entries_bytes((segment.get("spec") or {}).get("entries") or []) <= REMEMBERED_SEGMENT_BYTES


def _entries_bytes(entries: list[str]) -> int:
    """A segment's size as counted against its limits: each entry's bytes, and a little per entry
    for its quoting in the stored object."""
    return sum(len(x.encode()) + 8 for x in entries)
