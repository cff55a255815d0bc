"""The Gate resource: a checklist at one cadence, signed item by item, with expiry."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, field_validator

from stratops.models.audit import AuditHead
from stratops.models.common import DNS_LABEL, Model, Rule


class Cadence(str, Enum):
    pre_launch = "preLaunch"  # once, before any capital moves; again when version or limits change
    daily = "daily"  # every session
    weekly = "weekly"  # groom tickets, audit alert noise
    monthly = "monthly"  # DR drill, recalibrate the cost model
    quarterly = "quarterly"  # retire the models that should be retired


class GateItem(Model):
    """One item of the checklist."""

    id: str = Field(
        pattern=DNS_LABEL,
        max_length=63,
        description="Stable identifier, e.g. backtest-reviewed; signatures refer to it.",
    )
    text: str = Field(min_length=1, max_length=1024, description="What must be true; cannot change once signed.")
    required: bool = Field(default=True, description="Whether the gate is incomplete without it.")
    signers: list[Annotated[str, Field(min_length=1, max_length=253)]] | None = Field(
        default=None,
        max_length=20,
        description="Groups whose members may sign this item (the API server's userInfo.groups); none: anyone who may "
        "sign the gate.",
    )


class Signature(Model):
    """A signature of one item: who, when, evidence. Attributable: the admission webhook checks
    that `signer` is the user making the request."""

    item: str = Field(pattern=DNS_LABEL, max_length=63, description="The signed item's id.")
    signer: str = Field(
        min_length=1, max_length=253, description="User name of the signer, as the API server authenticated them."
    )
    signed_at: AwareDatetime = Field(description="When it was signed (RFC 3339, with its offset).")
    evidence: str = Field(min_length=1, max_length=2048, description="Evidence: text or a URL.")
    subject: str | None = Field(
        default=None,
        max_length=8192,
        description=(
            "What was signed, for pre-launch gates: <strategy>:<version>:<SHA-256 of its trading-relevant spec>, one "
            "per "
            "strategy of the gate, separated by spaces."
        ),
    )


class Session(Model):
    """The trading session that daily expiry follows."""

    timezone: str = Field(default="UTC", min_length=1, max_length=64, description="IANA time zone, e.g. Europe/London.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        # The API server cannot know the zone database: the operator's webhook and `stratops
        # validate` refuse an unknown zone, so no gate reaches evaluation with one.
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone, e.g. Europe/London or America/New_York") from None
        return value

    opens_at: str = Field(
        default="00:00",
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="Session start, HH:MM local time; a daily signature expires at the next one.",
    )


def _signatures_name_items(g: GateSpec) -> bool:
    ids = {i.id for i in g.items}
    return all(s.item in ids for s in g.signatures or [])


class GateSpec(Model):
    """A checklist at one cadence for one or more strategies."""

    cadence: Cadence = Field(description="preLaunch, daily, weekly, monthly or quarterly; immutable.")
    strategies: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        min_length=1, max_length=100, description="Strategies (same namespace) this gate applies to."
    )
    items: list[GateItem] = Field(
        min_length=1,
        max_length=50,
        description="The checklist.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"]},
    )
    signatures: list[Signature] | None = Field(
        default=None,
        max_length=50,
        description="Signatures, one per item (the latest).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["item"]},
    )
    session: Session | None = Field(default=None, description="Session that daily expiry follows.")
    min_signers: int | None = Field(
        default=None,
        ge=1,
        le=10,
        description="Distinct people whose signatures the gate needs to be complete (four eyes); default 2 for "
        "preLaunch, 1 otherwise.",
    )

    __rules__ = (
        Rule(
            cel="!has(self.signatures) || self.signatures.all(s, self.items.exists(i, i.id == s.item))",
            message="spec.signatures: every signature must name an item id of spec.items",
            field_path=".signatures",
            check=_signatures_name_items,
        ),
        Rule(
            cel="self.cadence == oldSelf.cadence",
            message="spec.cadence is immutable: create a new Gate for another cadence",
            field_path=".cadence",
        ),
    )


DEFAULT_MIN_SIGNERS = {Cadence.pre_launch: 2}


def min_signers(spec: GateSpec) -> int:
    """Distinct signers SPEC needs: its own setting, or 2 for pre-launch (four eyes) and 1 otherwise."""
    return spec.min_signers or DEFAULT_MIN_SIGNERS.get(spec.cadence, 1)


class GateStatus(Model):
    """Signed and missing items, expiry and overall state. Written only by the operator."""

    state: Literal["Complete", "Incomplete", "Expired"] | None = Field(
        default=None, description="Complete when every required item is signed and unexpired."
    )
    signed: str | None = Field(default=None, description="Signed required items over required items, e.g. 3/5.")
    signed_items: list[str] | None = Field(default=None, description="Ids of items with a valid signature.")
    signers: list[str] | None = Field(default=None, description="Distinct signers of the valid signatures.")
    missing_items: list[str] | None = Field(
        default=None, description="Ids of required items without a valid signature."
    )
    expires_at: datetime | None = Field(default=None, description="When the earliest signature lapses.")
    message: str | None = Field(default=None, description="Detail for humans.")
    observed_generation: int | None = Field(default=None, description="The .metadata.generation last evaluated.")
    recorded_signatures: str | None = Field(default=None, description="No longer written (before audit chains).")
    audited_signatures: list[str] | None = Field(
        default=None,
        max_length=50,
        description=("Keys (item|signer|signedAt|subject) of the current signatures already in the audit chain."),
    )
    audit: AuditHead | None = Field(default=None, description="The head of this gate's audit chain (AuditSegments).")
