"""The offline validator against the API server on generated documents: whatever the API
server refuses, `stratops validate` refuses, naming the same field (hypothesis, server-side
dry runs on the local control plane)."""

from __future__ import annotations

import copy
import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from cases import example
from stratops import GROUP, VERSION
from stratops.models import BY_KIND
from stratops.models.validate import validate_document

pytestmark = [pytest.mark.e2e, pytest.mark.kind]
DOCS = (
    "strategy.yaml",
    "monitors/02-data-feature-psi.yaml",
    "monitors/10-pnl-band.yaml",
    "gates/daily.yaml",
    "gates/pre-launch.yaml",
)
VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "x",
            "5",
            "-1",
            "lots",
            "2026-11-24T08:00:00",
            "2026-11-24T08:00:00Z",
            "1m",
            "0s",
            "live",
            "STRATOPS_X",
            "a" * 300,
            "fix://h:1",
            "Mars/Olympus_Mons",
            "99:99",
        ]
    ),
    st.integers(min_value=-3, max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.none(),
    st.lists(st.sampled_from(["a", "b"]), max_size=3),
    st.just({}),
    st.just({"x": 1}),
)


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:3]):
            yield from _paths(v, (*path, i))


@st.composite
def mutated(draw):
    doc = copy.deepcopy(example(draw(st.sampled_from(DOCS))))
    paths = [p for p in _paths(doc["spec"]) if p]
    path = draw(st.sampled_from(paths))
    parent = doc["spec"]
    for part in path[:-1]:
        parent = parent[part]
    value = draw(VALUES)
    if value is None and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    doc["metadata"] = {"name": f"fuzz-{uuid.uuid4().hex[:8]}"}
    return doc


@pytest.fixture(scope="module")
def fuzz_ns(kube, crds):
    name = f"f-{uuid.uuid4().hex[:10]}"  # outside every operator and webhook: the schema alone
    core = client.CoreV1Api(kube)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def _fields(problem_field: str) -> str:
    return problem_field.replace("[", ".").replace("]", "")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(doc=mutated())
def test_what_the_api_server_refuses_the_validator_refuses_naming_the_field(kube, fuzz_ns, doc):
    custom = client.CustomObjectsApi(kube)
    try:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, fuzz_ns, BY_KIND[doc["kind"]].plural, doc, dry_run="All", field_validation="Strict"
        )
        return  # accepted: the validator may still be stricter (the operator's webhook checks more)
    except ApiException as e:
        if e.status not in (400, 422):
            raise
        body = json.loads(e.body or "{}")
    causes = {
        _fields(c["field"])
        for c in (body.get("details") or {}).get("causes") or []
        if c.get("field") and c["field"] != "<nil>"
    }
    problems = validate_document(doc)
    assert problems, f"the API server refused, the validator accepted: {body.get('message')}\n{json.dumps(doc)[:2000]}"
    offline = {_fields(p.field) for p in problems}
    if causes:
        assert any(o == c or o.startswith(c + ".") or c.startswith(o + ".") for o in offline for c in causes), (
            f"fields differ: API server {sorted(causes)}, validator {sorted(offline)}: {body.get('message')}"
        )
