"""The generated CRDs on the real API server: the example desk is accepted, bad input is
rejected with a message that names the field, and immutable fields stay put."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from cases import BAD, BAD_AT_WEBHOOK, desk, example
from stratops import GROUP, VERSION
from stratops.models import BY_KIND
from stratops.models.validate import validate_document
from stratops.testing.fixtures import use_existing_cluster

pytestmark = pytest.mark.e2e


def _create(kube, namespace, doc):
    plural = BY_KIND[doc["kind"]].plural
    return client.CustomObjectsApi(kube).create_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, doc, field_validation="Strict"
    )


def _rejection(kube, namespace, doc, statuses=(400, 422)) -> str:
    with pytest.raises(ApiException) as info:
        _create(kube, namespace, doc)
    assert info.value.status in statuses, info.value.body  # 400: strict decoding (unknown field)
    return json.loads(info.value.body)["message"]


@pytest.mark.skipif(use_existing_cluster(), reason="the webhook is served on this host")
@pytest.mark.parametrize("case", BAD_AT_WEBHOOK, ids=lambda c: c.id)
def test_what_the_crd_cannot_check_the_webhook_refuses_naming_the_field(kube, operator, namespace, case):
    """Accepted by the schema, refused by the operator's webhook: never stored, so never a
    strategy that cannot be deployed, nor a gate that cannot be evaluated."""
    message = _rejection(kube, namespace, case.document(), statuses=(400,))
    assert case.phrase in message and "cannot be read, so it cannot be checked" in message, message
    offline = validate_document(case.document())
    assert any(p.field == case.field and case.phrase in p.message for p in offline)


@pytest.mark.kind
def test_example_desk_is_accepted(kube, crds, namespace):
    docs = desk()
    for doc in docs:
        _create(kube, namespace, doc)
    api = client.CustomObjectsApi(kube)
    counts = {
        k: len(api.list_namespaced_custom_object(GROUP, VERSION, namespace, BY_KIND[k].plural)["items"])
        for k in ("Strategy", "Monitor", "Gate")
    }
    assert counts == {"Strategy": 1, "Monitor": 12, "Gate": 5}


@pytest.mark.kind
@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_bad_input_is_rejected_naming_the_field(kube, crds, namespace, case):
    message = _rejection(kube, namespace, case.document())
    assert case.field in message and case.phrase in message, message
    # The offline validator names the same field with the same phrase.
    offline = validate_document(case.document())
    assert any(p.field == case.field and case.phrase in p.message for p in offline)


@pytest.mark.kind
def test_immutable_fields(kube, crds, namespace):
    api = client.CustomObjectsApi(kube)
    monitor = example("monitors/01-data-bar-age.yaml")
    _create(kube, namespace, monitor)
    with pytest.raises(ApiException) as info:
        api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "monitors", monitor["metadata"]["name"], {"spec": {"strategy": "another"}}
        )
    assert "spec.strategy is immutable" in json.loads(info.value.body)["message"]

    gate = example("gates/weekly.yaml")
    _create(kube, namespace, gate)
    with pytest.raises(ApiException) as info:
        api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "gates", gate["metadata"]["name"], {"spec": {"cadence": "monthly"}}
        )
    assert "spec.cadence is immutable" in json.loads(info.value.body)["message"]


@pytest.mark.kind
def test_duplicate_gate_item_ids_are_rejected(kube, crds, namespace):
    gate = example("gates/weekly.yaml")
    gate["spec"]["items"].append(dict(gate["spec"]["items"][0]))
    message = _rejection(kube, namespace, gate)
    assert "spec.items[3]" in message and "Duplicate value" in message


@pytest.mark.kind
def test_printer_columns_are_served(kube, crds, namespace):
    """kubectl get asks for the Table form; the columns on-call needs are in it."""
    _create(kube, namespace, example("strategy.yaml"))
    response = kube.rest_client.request(
        "GET",
        f"{kube.configuration.host}/apis/{GROUP}/{VERSION}/namespaces/{namespace}/strategies",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
    )
    table = json.loads(response.read())
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == ["Name", "Phase", "Mode", "Version", "Trading", "Known-Good", "Wanted", "Age"]
    row = dict(zip(names, table["rows"][0]["cells"], strict=True))
    assert row["Name"] == "mean-revert" and row["Wanted"] == "1.4.2"
