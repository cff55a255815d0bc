"""Fuzzing (hypothesis) of the models and the offline validator: whatever a desk writes, the
validator answers without crashing, and a rejection names the field that is wrong."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cases import desk
from stratops.models import BY_KIND
from stratops.models.validate import validate_document

EXAMPLES = {d["kind"]: d for d in desk()}  # one example document per kind
EXAMPLES["Incident"] = {
    "apiVersion": "stratops.io/v1alpha1",
    "kind": "Incident",
    "metadata": {"name": "i"},
    "spec": {
        "class": "RiskBreach",
        "severity": "P0",
        "strategy": "s",
        "summary": "limit breached",
        "postmortem": {"rootCause": "typo", "actions": ["review"], "owner": "risk"},
    },
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


def as_field(path: tuple) -> str:
    out = "spec"
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def related(field: str, target: str) -> bool:
    """A problem at FIELD is about TARGET: the same field, one inside it, or an object
    holding it (a rule over several fields of that object)."""
    norm = lambda f: f.replace("[", ".[")  # noqa: E731
    f, t = norm(field), norm(target)
    return f == t or f.startswith(t + ".") or t.startswith(f + ".")


KIND_PATHS = {k: paths(d["spec"]) for k, d in EXAMPLES.items()}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(EXAMPLES)), data=st.data())
def test_a_mutated_spec_is_either_valid_or_rejected_naming_the_field(kind: str, data: st.DataObject) -> None:
    doc = copy.deepcopy(EXAMPLES[kind])
    path = data.draw(st.sampled_from(KIND_PATHS[kind]), label="path")
    parent = doc["spec"]
    for p in path[:-1]:
        parent = parent[p]
    if data.draw(st.booleans(), label="delete") and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(values, label="value")
    problems = validate_document(doc)
    target = as_field(path)
    for p in problems:
        assert p.message and p.field, p
    if problems:
        assert any(related(p.field, target) for p in problems), (target, [str(p) for p in problems])
    else:  # accepted offline means the model accepts it too
        BY_KIND[kind].spec.model_validate(doc["spec"])


@settings(max_examples=200, deadline=None)
@given(
    doc=st.one_of(
        values,
        st.fixed_dictionaries(
            {
                "apiVersion": st.sampled_from(["stratops.io/v1alpha1", "stratops.io/v2", "v1"]),
                "kind": st.sampled_from([*BY_KIND, "Pod", ""]),
                "metadata": values,
                "spec": values,
            }
        ),
    )
)
def test_any_document_gets_an_answer_never_a_crash(doc: Any) -> None:
    for p in validate_document(doc):
        assert p.field and p.message
