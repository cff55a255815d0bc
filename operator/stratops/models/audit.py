"""The AuditSegment resource: a piece of one subject's append-only, hash-chained audit trail
(stratops.audit). Written only by the operator (the chart gives nobody else the right);
read by `stratops audit export` and `stratops audit verify`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from stratops.models.common import Model


class AuditSubject(Model):
    """Whose trail this is."""

    kind: Literal["Strategy", "Gate"] = Field(description="Strategy or Gate.")
    name: str = Field(min_length=1, max_length=253, description="Its name, in this namespace.")


class AuditSegmentSpec(Model):
    """Entries of one subject's chain, in order: canonical JSON lines, each with its seq and the
    SHA-256 of the line before it."""

    subject: AuditSubject = Field(description="Whose trail this is.")
    index: int = Field(ge=0, description="Position of this segment in the subject's trail (0, 1, ...).")
    entries: list[Annotated[str, Field(max_length=65536)]] = Field(
        default_factory=list, max_length=10000, description="The entries, oldest first."
    )


class AuditSegmentStatus(Model):
    """Nothing is kept here: the chain's head is in the subject's own status."""

    sealed: bool | None = Field(default=None, description="True once the next segment was started.")


class AuditHead(Model):
    """Where a subject's audit chain ends (in its status, which only the operator writes), and
    the entries not yet known to be in the trail (stratops.audit.still_pending)."""

    seq: int = Field(default=0, ge=0, description="Sequence number of the last entry.")
    hash: str = Field(default="0" * 64, min_length=64, max_length=64, description="SHA-256 of the last entry.")
    pending: list[str] | None = Field(
        default=None,
        max_length=100,
        description=(
            "Entries the trail is not known to hold: the last decision's, and earlier ones after a failed"
            " append (the newest 100), written again after a crash or a takeover."
        ),
    )
