"""Offline validation of stratops manifests, with the API server's way of naming fields.

`stratops validate FILE…` (and the GitOps pull-request check) runs this. Each problem is reported
as `<field path>: <message>`, where the field path is the one the API server would print
(`spec.riskLimits.maxPosition`) and the message follows its wording (Required value, Unsupported
value, Invalid value), so a desk sees the same words before and after merging.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from stratops import API_VERSION, GROUP
from stratops.models import BY_KIND
from stratops.models.common import Model

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one document."""

    source: str
    document: int
    kind: str
    name: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}#{self.document}"
        obj = f"{self.kind}/{self.name}" if self.kind else "document"
        return f"{where} {obj}: {self.field}: {self.message}"


def _path(loc: tuple[Any, ...], prefix: str) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _value(v: Any) -> str:
    return f'"{v}"' if isinstance(v, str) else repr(v) if not isinstance(v, dict | list) else "object"


def _message(err: Mapping[str, Any]) -> tuple[tuple[Any, ...], str]:
    """Translate one pydantic error into (location, API-server-style message)."""
    loc, typ, ctx, inp = tuple(err["loc"]), err["type"], err.get("ctx") or {}, err.get("input")
    if typ == "stratops_rule":
        extra = tuple(p for p in (ctx.get("field_path") or "").split(".") if p)
        return loc + extra, f"Invalid value: {ctx['message']}"
    if typ == "missing":
        return loc, "Required value"
    if typ == "extra_forbidden":
        return loc, "unknown field"
    if typ in ("literal_error", "enum"):
        expected = ctx.get("expected", "")
        return loc, f"Unsupported value: {_value(inp)}: supported values: {expected}"
    if typ in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        word = {
            "greater_than": "greater than",
            "greater_than_equal": "greater than or equal to",
            "less_than": "less than",
            "less_than_equal": "less than or equal to",
        }[typ]
        bound = next(iter(ctx.values()))
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        return loc, f"Invalid value: {_value(inp)}: should be {word} {bound}"
    if typ == "string_pattern_mismatch":
        return loc, f"Invalid value: {_value(inp)}: should match '{ctx.get('pattern')}'"
    if typ in ("string_too_short", "too_short"):
        return loc, f"Invalid value: {_value(inp)}: should have at least {ctx.get('min_length')} " + (
            "chars" if typ == "string_too_short" else "items"
        )
    if typ in ("string_too_long", "too_long"):
        return loc, f"Too long: may not be more than {ctx.get('max_length')}"
    if typ in ("timezone_aware", "datetime_parsing", "datetime_type", "datetime_from_date_parsing"):
        return loc, f"Invalid value: {_value(inp)}: must be of type date-time (RFC 3339, with its offset)"
    if typ.endswith(("_type", "_parsing")):
        want = {
            "int": "integer",
            "float": "number",
            "bool": "boolean",
            "string": "string",
            "list": "array",
            "dict": "object",
            "model": "object",
            "datetime": "string",
        }
        base = typ.split("_")[0]
        if base in ("model", "dict"):
            return loc, f"Invalid value: {_value(inp)}: must be of type object"
        return loc, f"Invalid value: {_value(inp)}: must be of type {want.get(base, base)}"
    return loc, f"Invalid value: {_value(inp)}: {err['msg']}"


def validate_spec(kind: str, spec: Any) -> list[tuple[str, str]]:
    """(field, message) pairs for SPEC of KIND; empty when valid."""
    model: type[Model] = BY_KIND[kind].spec  # type: ignore[assignment]
    if spec is None:
        return [("spec", "Required value")]
    try:
        # As the API server reads it: JSON, strictly typed ("5" is not a number; YAML's .inf and
        # 1e309 are not JSON numbers at all).
        model.model_validate_json(json.dumps(spec, default=_json_default, allow_nan=True), strict=True)
    except ValidationError as e:
        return describe_errors(e)
    return []


def _json_default(value: Any) -> str:
    # YAML reads unquoted timestamps as datetimes; kubectl sends them as RFC 3339 strings.
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def list_map_problems(kind: str, spec: Any) -> list[tuple[str, str]]:
    """Duplicate keys in the spec's list-type maps (the API server refuses them)."""
    from stratops.models.crd import structural_schema

    out: list[tuple[str, str]] = []

    def walk(schema: dict[str, Any], value: Any, path: str) -> None:
        if isinstance(value, dict):
            for k, sub in (schema.get("properties") or {}).items():
                if k in value:
                    walk(sub, value[k], f"{path}.{k}")
        elif isinstance(value, list):
            keys = schema.get("x-kubernetes-list-map-keys")
            seen: set[tuple[Any, ...]] = set()
            for i, item in enumerate(value):
                if keys and isinstance(item, dict):
                    key = tuple(str(item.get(k)) for k in keys)
                    if key in seen:
                        shown = ", ".join(f'"{k}":"{item.get(k)}"' for k in keys)
                        out.append((f"{path}[{i}]", f"Duplicate value: map[string]interface {{}}{{{shown}}}"))
                    seen.add(key)
                walk(schema.get("items") or {}, item, f"{path}[{i}]")

    walk(structural_schema(BY_KIND[kind].spec), spec, "spec")
    return out


def future_signatures(spec: Any, now: datetime) -> list[tuple[str, str]]:
    """Signatures dated ahead of NOW (the operator refuses them at admission)."""
    from stratops.admission.review import SIGNED_AT_TOLERANCE

    out = []
    for i, s in enumerate((spec or {}).get("signatures") or [] if isinstance(spec, dict) else []):
        try:
            at = datetime.fromisoformat(
                str(_json_default(s["signedAt"]) if isinstance(s.get("signedAt"), datetime) else s["signedAt"]).replace(
                    "Z", "+00:00"
                )
            )
        except (KeyError, ValueError, TypeError):
            continue
        if at.tzinfo is not None and at > now + SIGNED_AT_TOLERANCE:
            out.append(
                (
                    f"spec.signatures[{i}].signedAt",
                    f'Invalid value: "{s["signedAt"]}": a signature cannot be dated in the future',
                )
            )
    return out


def describe_errors(e: ValidationError, prefix: str = "spec") -> list[tuple[str, str]]:
    """(field, message) pairs for a spec's validation error, in the API server's words."""
    out = []
    for err in e.errors(include_url=False):
        loc, msg = _message(err)
        out.append((_path(loc, prefix), msg))
    return out


def validate_document(doc: Any, source: str = "-", index: int = 1) -> list[Problem]:
    """Problems with one manifest; documents of other API groups are not ours and pass."""

    def problem(field: str, message: str, kind: str = "", name: str = "") -> Problem:
        return Problem(source, index, kind, name, field, message)

    if not isinstance(doc, dict):
        return [problem("document", "Invalid value: must be a mapping with apiVersion, kind, metadata and spec")]
    api_version = str(doc.get("apiVersion", ""))
    if api_version.split("/")[0] != GROUP:
        return []
    kind, meta = doc.get("kind"), doc.get("metadata") or {}
    name = str(meta.get("name", "")) if isinstance(meta, dict) else ""
    if api_version != API_VERSION:
        return [
            problem(
                "apiVersion",
                f'Unsupported value: "{api_version}": supported values: "{API_VERSION}"',
                str(kind or ""),
                name,
            )
        ]
    if not isinstance(kind, str) or kind not in BY_KIND:
        return [
            problem(
                "kind",
                f'Unsupported value: "{kind}": supported values: ' + ", ".join(f'"{k}"' for k in BY_KIND),
                str(kind or ""),
                name,
            )
        ]
    problems = []
    if not name:
        problems.append(problem("metadata.name", "Required value: name is required", kind))
    elif len(name) > 253 or not DNS_SUBDOMAIN.match(name):
        problems.append(
            problem(
                "metadata.name",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric '
                "characters, '-' or '.'",
                kind,
                name,
            )
        )
    elif (limit := BY_KIND[kind].max_name) is not None and len(name) > limit:
        problems.append(problem("metadata.name", f"Invalid value: {BY_KIND[kind].name_message}", kind, name))
    extra = set(doc) - {"apiVersion", "kind", "metadata", "spec", "status"}
    for key in sorted(extra):
        problems.append(problem(key, "unknown field", kind, name))
    problems += [problem(f, m, kind, name) for f, m in validate_spec(kind, doc.get("spec"))]
    if isinstance(doc.get("spec"), dict):
        problems += [problem(f, m, kind, name) for f, m in list_map_problems(kind, doc["spec"])]
        if kind == "Gate":
            problems += [problem(f, m, kind, name) for f, m in future_signatures(doc["spec"], datetime.now(UTC))]
    return problems


def validate_files(paths: Iterable[Path]) -> tuple[int, list[Problem]]:
    """(number of stratops documents checked, problems) for the YAML files or directories."""
    checked, problems = 0, []
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")) if path.is_dir() else [path]
        for f in files:
            try:
                docs = list(yaml.safe_load_all(f.read_text()))
            except (OSError, yaml.YAMLError) as e:
                problems.append(Problem(str(f), 0, "", "", "file", f"cannot be read as YAML: {e}"))
                continue
            for i, doc in enumerate((d for d in docs if d is not None), 1):
                if isinstance(doc, dict) and str(doc.get("apiVersion", "")).split("/")[0] == GROUP:
                    checked += 1
                problems += validate_document(doc, str(f), i)
    return checked, problems
