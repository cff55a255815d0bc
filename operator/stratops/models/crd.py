"""Generate CustomResourceDefinitions from the pydantic models (the one source of truth).

pydantic's JSON Schema is not a structural OpenAPI v3 schema as is; this module inlines
`$ref`s, turns `Optional[X]` into X (an absent field is how Kubernetes says "unset"), drops
titles and defaults (pydantic applies defaults when the operator reads an object, so what Git
holds stays what the API server stores), rewrites numeric `exclusiveMinimum/Maximum` to the
OpenAPI 3.0 boolean form, and keeps `x-kubernetes-*` extensions (CEL rules, list types).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from stratops import GROUP, VERSION

_DROP = {"title", "default", "examples"}


class SchemaError(ValueError):
    """The model cannot be expressed as a structural schema."""


def _resolve(node: Any, defs: dict[str, Any], path: str) -> Any:
    if isinstance(node, list):
        return [_resolve(n, defs, path) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs, path)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise SchemaError(f"{path}: unions other than Optional[X] are not structural")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        inner = _resolve(options[0], defs, path)
        # The outer node carries the field's description; the inner one the type's rules.
        return {**inner, **{k: v for k, v in rest.items() if k not in _DROP}}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key == "$defs":
            continue
        if key == "properties":
            out[key] = {k: _resolve(v, defs, f"{path}.{k}") for k, v in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _resolve(value, defs, f"{path}[]")
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("additionalProperties") is False:
        del out["additionalProperties"]  # not allowed in a structural schema; unknown fields are pruned
    return out


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of MODEL (by alias, as on the wire)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema: dict[str, Any] = _resolve(raw, raw.get("$defs", {}), model.__name__)
    return schema


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            d["description"] = self.description
        if self.priority:
            d["priority"] = self.priority
        return d


AGE = PrinterColumn("Age", ".metadata.creationTimestamp", "date")


@dataclass(frozen=True)
class ResourceKind:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    columns: tuple[PrinterColumn, ...] = field(default_factory=tuple)
    max_name: int | None = None  # metadata.name bound, when the name is used as a label value

    @property
    def name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def name_message(self) -> str:
        return (
            f"metadata.name: at most {self.max_name} characters: it is a label value of the objects the operator "
            f"makes for the {self.kind.lower()}"
        )

    def crd(self) -> dict[str, Any]:
        spec_schema = structural_schema(self.spec)
        # Only the operator writes status: the spec's rules there would only cost the API server.
        status_schema = _without_rules(structural_schema(self.status))
        spec_schema["description"] = (self.spec.__doc__ or "").strip()
        status_schema["description"] = (self.status.__doc__ or "").strip()
        schema: dict[str, Any] = {
            "type": "object",
            "description": self.description,
            "required": ["spec"],
            "properties": {
                "apiVersion": {"type": "string", "description": "API version of this object."},
                "kind": {"type": "string", "description": "Kind of this object."},
                "metadata": {"type": "object"},  # the API server allows nothing else here
                "spec": spec_schema,
                "status": status_schema,
            },
        }
        if self.max_name is not None:
            schema["x-kubernetes-validations"] = [
                {"rule": f"size(self.metadata.name) <= {self.max_name}", "message": self.name_message}
            ]
        return {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": self.name, "labels": {"app.kubernetes.io/part-of": "stratops"}},
            "spec": {
                "group": GROUP,
                "scope": "Namespaced",
                "names": {
                    "kind": self.kind,
                    "listKind": f"{self.kind}List",
                    "plural": self.plural,
                    "singular": self.kind.lower(),
                    "shortNames": list(self.short_names),
                    "categories": ["stratops"],
                },
                "versions": [
                    {
                        "name": VERSION,
                        "served": True,
                        "storage": True,
                        "subresources": {"status": {}},
                        "additionalPrinterColumns": [c.to_dict() for c in (*self.columns, AGE)],
                        "schema": {"openAPIV3Schema": schema},
                    }
                ],
            },
        }


def _without_rules(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_rules(v) for k, v in node.items() if k != "x-kubernetes-validations"}
    if isinstance(node, list):
        return [_without_rules(v) for v in node]
    return node


def render(kind: ResourceKind) -> str:
    header = (
        "# Generated by `stratops crds` from the pydantic models in operator/stratops/models.\n"
        "# Do not edit: change the models and regenerate.\n"
    )
    return header + yaml.safe_dump(kind.crd(), sort_keys=False, width=100)


def write_crds(directory: Path, kinds: tuple[ResourceKind, ...]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for k in kinds:
        path = directory / f"{GROUP}_{k.plural}.yaml"
        path.write_text(render(k))
        written.append(path)
    return written


def stale_crds(directory: Path, kinds: tuple[ResourceKind, ...]) -> list[str]:
    """Names of CRD files in DIRECTORY that differ from what the models generate."""
    stale = []
    for k in kinds:
        path = directory / f"{GROUP}_{k.plural}.yaml"
        if not path.exists() or path.read_text() != render(k):
            stale.append(path.name)
    return stale
