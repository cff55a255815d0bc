"""Shared building blocks of the stratops resources.

Every model uses Kubernetes' camelCase on the wire (aliases) and snake_case in Python. Rules
that the API server can check by itself are declared once, as `Rule`s: each becomes a CEL rule
(`x-kubernetes-validations`) in the generated CRD and a check of the offline validator, with the
same message, so `stratops validate` and `kubectl apply` say the same thing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


@lru_cache(maxsize=1024)  # read at every evaluation of every monitor; few distinct texts
def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration ('500ms', '30s', '5m', '1h30m', '168h') as CEL's duration() does."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration such as 500ms, 30s, 5m, 1h30m or 168h")
    return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text)))


def Duration(description: str, **kw: Any) -> Any:  # reads as a type in models
    """A duration field: Go syntax, so the API server's CEL duration() reads it the same way."""
    return Field(pattern=DURATION_PATTERN, description=description, **kw)


@dataclass(frozen=True)
class Rule:
    """A validation rule enforced by the API server (CEL) and by the offline validator.

    `check` receives the validated model and returns True when the rule holds. Transition
    rules (`oldSelf`) have no offline check: they need the stored object.
    """

    cel: str
    message: str
    field_path: str | None = None
    check: Callable[[Any], bool] | None = None
    reason: str | None = None

    def to_schema(self) -> dict[str, str]:
        out = {"rule": self.cel, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        if self.reason:
            out["reason"] = self.reason
        return out


def _schema_extra(schema: dict[str, Any], cls: type) -> None:
    rules: list[Rule] = list(getattr(cls, "__rules__", ()))
    if rules:
        schema["x-kubernetes-validations"] = [r.to_schema() for r in rules]
    extra = getattr(cls, "__schema_extra__", None)
    if extra:
        schema.update(extra)


class Model(BaseModel):
    """Base of every stratops model: camelCase aliases, unknown fields rejected, CEL rules."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        json_schema_extra=_schema_extra,
        use_attribute_docstrings=True,
        allow_inf_nan=False,  # the API server's JSON has no Infinity or NaN: neither may pass here
    )
    __rules__: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> Model:
        for rule in type(self).__rules__:
            if rule.check is not None and not rule.check(self):
                # The field path travels with the error so the offline validator can name
                # the same field the API server names (stratops.models.validate).
                raise PydanticCustomError(
                    "stratops_rule",
                    "{message}",
                    {"message": rule.message, "field_path": rule.field_path or ""},
                )
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(Model):
    """A status condition in the Kubernetes format (metav1.Condition)."""

    type: str = Field(description="Condition type, e.g. Ready, Promoted, GatesSatisfied.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="One CamelCase word saying why the condition has this status.")
    message: str = Field(default="", description="Human-readable detail.")
    last_transition_time: datetime = Field(description="When the status last changed.")
    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation the condition was computed from."
    )


class SecretKeyRef(Model):
    """A key in a Secret of the resource's namespace. The operator never logs its value."""

    name: Annotated[str, Field(min_length=1, description="Secret name.")]
    key: Annotated[str, Field(min_length=1, description="Key in the Secret's data.")]
