"""The Helm chart: CRD copies, values schema, RBAC scope, security settings, alerts and dashboard.

Rendered with a real helm (hack/build-helm.sh); the e2e test test_chart.py applies the result
to the local cluster.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

import stratops
from chart import CHART, ROOT, HelmError, kinds, render
from stratops.handlers.startup import peering_priority
from stratops.lifecycle.shard import layout
from stratops.testing.prometheus import monitoring_binary


def test_chart_crds_are_the_generated_ones():
    """charts/stratops/crds/ carries copies of crds/ (`make crds` refreshes both): never stale."""
    generated = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    assert generated
    for name in generated:
        assert (CHART / "crds" / name).read_text() == (ROOT / "crds" / name).read_text(), f"{name}: run `make crds`"
    extra = {p.name for p in (CHART / "crds").glob("*.yaml")} - set(generated)
    assert extra == {"kopf.dev_peerings.yaml"}, "the chart carries only the generated CRDs and kopf's peering CRDs"


def test_chart_version_follows_the_operator():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == stratops.__version__


def test_peering_priority_random_draws_distinct_positive_numbers():
    drawn = {peering_priority("random") for _ in range(50)}
    assert len(drawn) == 50 and min(drawn) > 0
    assert peering_priority("7") == 7


def _registered_metrics() -> set[str]:
    """Every metric family the operator exposes (its modules register them on import)."""
    from prometheus_client import REGISTRY

    import stratops.alerts
    import stratops.k8s.monitoring
    import stratops.metrics  # noqa: F401

    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("stratops_"):
            # The exposed series: counters end in _total, histograms add _bucket, _sum, _count.
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(family.type, ("",))
            names.update(family.name + s for s in suffixes)
    return names


def _metric_names(text: str) -> set[str]:
    return set(re.findall(r"\bstratops_[a-z_]+\b", text)) - {"stratops_io"}


def test_dashboard_and_alerts_use_only_metrics_the_operator_exposes():
    known = _registered_metrics()
    dashboard = json.loads((CHART / "dashboards" / "stratops.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    rules = (CHART / "templates" / "prometheusrule.yaml").read_text()
    used = _metric_names(exprs) | _metric_names(rules)
    assert used - known == set()
    # The dashboard shows what the issue asks: strategies, trading states, incidents, gates, monitors.
    for metric in (
        "stratops_strategy_trading_state",
        "stratops_incidents_opened_total",
        "stratops_gate_complete",
        "stratops_monitor_value",
    ):
        assert metric in exprs


def test_defaults_are_namespaced_least_privilege():
    docs = kinds(render())
    assert "ClusterRole" not in docs and "ClusterRoleBinding" not in docs
    (role,) = [r for r in docs["Role"] if r["metadata"]["name"] == "ops-stratops"]
    assert role["metadata"]["namespace"] == "desk"
    verbs = {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    deleters = {k for k, v in verbs.items() if "delete" in v}
    # Deletion is the garbage collector's, but for foreign pods of a halted strategy and a
    # strategy identity someone else made first (a ServiceAccount's tokens die only with it).
    assert deleters == {
        ("", "pods"),
        ("", "serviceaccounts"),
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "rolebindings"),
    }
    assert not {"escalate", "bind", "impersonate"} & set().union(*verbs.values())
    assert "*" not in set().union(*verbs.values())
    assert verbs[("", "secrets")] == {"get"}, "secrets: get by name, never list or watch"
    assert ("", "namespaces") not in verbs and ("kopf.dev", "kopfpeerings") in verbs
    bindings = {b["metadata"]["name"]: b["subjects"] for b in docs["RoleBinding"]}
    assert bindings["ops-stratops"] == [{"kind": "ServiceAccount", "name": "ops-stratops", "namespace": "desk"}]
    # people's roles: the default groups the example gates name; gitops and delegates only when given
    assert bindings["ops-stratops-risk-owner"] == [
        {"kind": "Group", "name": "stratops:risk-owners", "apiGroup": "rbac.authorization.k8s.io"}
    ]
    assert set(bindings) == {"ops-stratops", "ops-stratops-trader", "ops-stratops-risk-owner"}
    (vwc,) = docs["ValidatingWebhookConfiguration"]
    for hook in vwc["webhooks"]:
        assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == ["desk"]
    for binding in docs["ValidatingAdmissionPolicyBinding"] + docs["MutatingAdmissionPolicyBinding"]:
        assert binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]["values"] == ["desk"]


def test_named_namespaces_get_a_role_and_peering_each():
    docs = kinds(render("watch.namespaces={fx,rates}"))
    assert sorted(r["metadata"]["namespace"] for r in docs["Role"] if r["metadata"]["name"] == "ops-stratops") == [
        "fx",
        "rates",
    ]
    assert sorted(p["metadata"]["namespace"] for p in docs["KopfPeering"]) == ["fx", "rates"]
    args = docs["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=fx" in args and "--namespace=rates" in args


def test_shards_are_deployments_with_a_peering_and_a_part_of_the_fleet_each():
    docs = kinds(render("shards=3", "watch.namespaces={fx,rates}"))
    deps = sorted(docs["Deployment"], key=lambda d: d["metadata"]["name"])
    assert [d["metadata"]["name"] for d in deps] == [f"ops-stratops-shard-{i}" for i in range(3)]
    envs = [{e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]} for d in deps]
    assert [e["STRATOPS_SHARD"] for e in envs] == ["0/3", "1/3", "2/3"]
    assert [e["STRATOPS_PEERING"] for e in envs] == [f"ops-stratops-shard-{i}-of-3" for i in range(3)]
    assert [layout(e["STRATOPS_PEERING"]) for e in envs] == [("ops-stratops", 3)] * 3, "the operator reads the count"
    selectors = [d["spec"]["selector"]["matchLabels"]["stratops.io/shard"] for d in deps]
    assert selectors == ["0", "1", "2"], "each shard's pods are its own (rollouts and PDBs do not mix them)"
    assert all(
        d["spec"]["template"]["metadata"]["labels"]["stratops.io/shard"] == s
        for d, s in zip(deps, selectors, strict=True)
    )
    peerings = sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in docs["KopfPeering"])
    assert peerings == sorted((ns, f"ops-stratops-shard-{i}-of-3") for ns in ("fx", "rates") for i in range(3))
    assert sorted(p["metadata"]["name"] for p in docs["PodDisruptionBudget"]) == [d["metadata"]["name"] for d in deps]
    (svc,) = [s for s in docs["Service"] if s["metadata"]["name"].endswith("webhook")]
    assert "stratops.io/shard" not in svc["spec"]["selector"], "every shard's replicas validate"
    with pytest.raises(HelmError, match="/shards"):
        render("shards=0")


def test_the_ruler_mode_wires_each_shard_s_receiver_and_only_the_rights_it_needs():
    with pytest.raises(HelmError, match=r"ruler\.enabled needs ruler\.tokenSecret\.name"):
        render("ruler.enabled=true")
    off = kinds(render())
    assert not [r for r in off["Role"] if "ruler" in r["metadata"]["name"]]
    assert not [rule for r in off["Role"] for rule in r["rules"] if "monitoring.coreos.com" in rule["apiGroups"]]
    docs = kinds(render("ruler.enabled=true", "ruler.tokenSecret.name=am-token", "shards=2"))
    deps = sorted(docs["Deployment"], key=lambda d: d["metadata"]["name"])
    services = {s["metadata"]["name"]: s for s in docs["Service"]}
    for d in deps:
        name, pod = d["metadata"]["name"], d["spec"]["template"]["spec"]
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert env["STRATOPS_RULER_SERVICE"]["value"] == f"{name}-ruler"
        assert env["STRATOPS_RULER_TOKEN_FILE"]["value"] == "/etc/stratops/ruler/token"
        assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
        assert {"name": "ruler-token", "secret": {"secretName": "am-token"}} in pod["volumes"]
        svc = services[f"{name}-ruler"]["spec"]
        assert "selector" not in svc, "its one endpoint is the acting replica's, published by it"
        assert svc["ports"] == [{"name": "receiver", "port": 9444, "targetPort": 9444}]
    (ruler_role,) = [r for r in docs["Role"] if r["metadata"]["name"] == "ops-stratops-ruler"]
    named = [rule for rule in ruler_role["rules"] if "resourceNames" in rule]
    assert named == [
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["get", "update"],
            "resourceNames": [f"ops-stratops-shard-{i}-ruler-acting" for i in range(2)],
        }
    ]
    (ops,) = [r for r in docs["Role"] if r["metadata"]["name"] == "ops-stratops"]
    rules = [rule for rule in ops["rules"] if "monitoring.coreos.com" in rule["apiGroups"]]
    assert rules == [
        {
            "apiGroups": ["monitoring.coreos.com"],
            "resources": ["prometheusrules"],
            "verbs": ["get", "list", "watch", "create", "update", "delete"],
        }
    ]
    # The desk's people get nothing on the rules that judge their strategies.
    for role in docs["Role"]:
        if role["metadata"]["name"].endswith(("-trader", "-risk-owner")):
            assert not [rule for rule in role["rules"] if "monitoring.coreos.com" in rule["apiGroups"]]


def test_one_shard_is_one_deployment_named_as_before():
    (dep,) = kinds(render())["Deployment"]
    assert (
        dep["metadata"]["name"] == "ops-stratops" and "stratops.io/shard" not in dep["spec"]["selector"]["matchLabels"]
    )
    assert "STRATOPS_SHARD" not in {e["name"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_cluster_wide_only_when_asked():
    docs = kinds(render("watch.clusterWide=true", "rbac.readSecrets=false"))
    assert "Role" not in docs and "KopfPeering" not in docs
    (cr,) = [r for r in docs["ClusterRole"] if r["metadata"]["name"] == "ops-stratops"]
    resources = {r for rule in cr["rules"] for r in rule["resources"]}
    assert "clusterkopfpeerings" in resources and "secrets" not in resources
    assert docs["ClusterKopfPeering"] and docs["ClusterRoleBinding"]
    assert "--all-namespaces" in docs["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "namespaceSelector" not in docs["ValidatingWebhookConfiguration"][0]["webhooks"][0]
    env = {e["name"] for e in docs["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "STRATOPS_CLUSTER_SCANNING" not in env


def test_operator_pod_is_non_root_read_only_and_peered():
    (dep,) = kinds(render())["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    env = {e["name"]: e for e in c["env"]}
    assert dep["spec"]["replicas"] == 2
    assert env["STRATOPS_PEERING"]["value"] == "ops-stratops" and env["STRATOPS_PEERING_PRIORITY"]["value"] == "random"
    assert env["POD_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["STRATOPS_STRATEGY_SECRET_LABELS"]["value"] == "stratops.io/secret-use=strategy"
    assert env["STRATOPS_CLUSTER_SCANNING"]["value"] == "false", (
        "namespaced rights: no cluster-wide namespace/CRD watch"
    )
    assert {p["name"] for p in c["ports"]} == {"metrics", "health", "webhook"}
    assert c["livenessProbe"]["httpGet"]["port"] == "health"


def test_credentials_come_from_secrets_never_values(tmp_path):
    docs = kinds(
        render(
            values={
                "operator": {
                    "slackWebhookSecret": {"name": "slack", "key": "url"},
                    "pagerduty": {"routingKeySecret": {"name": "pd"}},
                }
            },
            tmp=tmp_path,
        )
    )
    env = {e["name"]: e for e in docs["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["STRATOPS_SLACK_WEBHOOK_URL"]["valueFrom"]["secretKeyRef"] == {"name": "slack", "key": "url"}
    assert env["STRATOPS_PAGERDUTY_ROUTING_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "pd", "key": "routing-key"}
    assert "value" not in env["STRATOPS_SLACK_WEBHOOK_URL"]


@pytest.mark.parametrize(
    "bad, message",
    [
        (["replicas=two"], "/replicas"),
        (["replica=2"], "additional properties 'replica' not allowed"),
        (["webhook.failurePolicy=Ignore"], "additional properties 'failurePolicy' not allowed"),
        (["allowLists.prometheusUrls={prometheus:9090}"], "/allowLists/prometheusUrls/0"),
        (["webhook.certificate.source=secret"], "/webhook/certificate/secretName"),
        (["watch.namespaces={Not_A_Namespace}"], "/watch/namespaces/0"),
        (["operator.prometheusUrl=prometheus:9090"], "/operator/prometheusUrl"),
        (["metrics.port=0"], "/metrics/port"),
    ],
)
def test_values_schema_rejects_bad_values(bad, message):
    with pytest.raises(HelmError, match=re.escape(message)):
        render(*bad)


def test_several_replicas_need_peering():
    with pytest.raises(HelmError, match=r"replicas > 1 needs peering\.enabled"):
        render("peering.enabled=false")
    single = kinds(render("peering.enabled=false", "replicas=1"))
    assert "KopfPeering" not in single and "PodDisruptionBudget" not in single
    assert all("kopfpeerings" not in rule["resources"] for rule in single["Role"][0]["rules"]), (
        "no peering, no rights on it"
    )
    env = {e["name"] for e in single["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "STRATOPS_PEERING" not in env


def test_prometheus_rules_are_valid_promql(tmp_path):
    """promtool (built from the pinned Prometheus module by hack/build-monitoring.sh) checks every expression."""
    promtool = monitoring_binary("promtool")
    (rule,) = kinds(render("metrics.prometheusRule.enabled=true", "metrics.serviceMonitor.enabled=true"))[
        "PrometheusRule"
    ]
    f = tmp_path / "rules.yaml"
    f.write_text(yaml.safe_dump(rule["spec"]))
    out = subprocess.run([promtool, "check", "rules", str(f)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 10 rules found" in out.stdout


def test_the_event_loop_lag_alert_fires_on_a_late_loop_and_not_on_a_busy_one(tmp_path):
    """StratopsEventLoopLagging, as the chart renders it, under `promtool test rules`: a replica
    whose loop runs 0.5 s late for 10 minutes pages a warning; one that runs 20 ms late does not."""
    promtool = monitoring_binary("promtool")
    (rule,) = kinds(render("metrics.prometheusRule.enabled=true", "metrics.serviceMonitor.enabled=true"))[
        "PrometheusRule"
    ]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    [lagging] = [r for r in rule["spec"]["groups"][0]["rules"] if r.get("alert") == "StratopsEventLoopLagging"]
    bounds = ["0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "+Inf"]

    def samples(instance: str, lag: float) -> list[dict]:
        # 240 samples a minute (one every 0.25 s), each LAG late: cumulative buckets
        return [
            {
                "series": f'stratops_event_loop_lag_seconds_bucket{{instance="{instance}",le="{le}"}}',
                "values": f"0+{240 if (le == '+Inf' or float(le) >= lag) else 0}x30",
            }
            for le in bounds
        ]

    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": samples("late:9090", 0.4) + samples("busy:9090", 0.02),
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": "StratopsEventLoopLagging", "exp_alerts": []},
                    {
                        "eval_time": "25m",
                        "alertname": "StratopsEventLoopLagging",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "instance": "late:9090"},
                                "exp_annotations": {
                                    "summary": "The operator at late:9090 runs its event loop late (p99 over 0.25 s)",
                                    "description": lagging["annotations"]["description"],
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    out = subprocess.run([promtool, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def _leaves(node, path=""):
    if (
        isinstance(node, dict)
        and node
        and path
        not in (
            "resources",
            "metrics.dashboard.labels",
            "allowLists.strategySecretLabels",
            "allowLists.monitorSecretLabels",
        )
    ):
        for k, v in node.items():
            yield from _leaves(v, f"{path}.{k}" if path else k)
    else:
        yield path


def test_every_value_is_documented_in_the_chart_readme():
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert [k for k in _leaves(values) if f"`{k}`" not in readme] == []


def test_the_chart_routes_every_admission_handler_the_operator_serves():
    """Each kopf admission handler (registered when the webhook is served) has a webhook in the
    chart at /<handler id>, the one stratops.admission.webhooks builds: fail closed, spec changes only."""
    from stratops.admission.webhooks import webhooks

    code = (
        "import kopf, stratops.handlers as h; registry = kopf.OperatorRegistry(); h.register(registry);"
        "r = registry._webhooks.get_all_handlers();"
        "print(' '.join(f'{h.id}={h.ignore_failures}' for h in r))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "STRATOPS_WEBHOOK_PORT": "9443"},
    )
    served = dict(item.split("=") for item in out.stdout.split())
    (vwc,) = kinds(render())["ValidatingWebhookConfiguration"]
    routed = {h["clientConfig"]["service"]["path"].lstrip("/"): h["failurePolicy"] for h in vwc["webhooks"]}
    assert routed == dict.fromkeys(served, "Fail") and "True" not in served.values()
    service = {"name": "ops-stratops-webhook", "namespace": "desk", "port": 443}
    want = webhooks({"service": service}, vwc["webhooks"][0]["namespaceSelector"])
    got = [
        {**h, "clientConfig": {k: v for k, v in h["clientConfig"].items() if k != "caBundle"}} for h in vwc["webhooks"]
    ]
    assert sorted(got, key=lambda h: h["name"]) == sorted(want, key=lambda h: h["name"])


def test_the_chart_ships_the_generated_admission_policies():
    from stratops.admission.policies import CHART_FILE, bindings, policies, render_policies

    assert (ROOT / CHART_FILE).read_text() == render_policies(), "stale: run `make crds`"
    docs = kinds(render())
    shipped = docs["ValidatingAdmissionPolicy"] + docs["MutatingAdmissionPolicy"]
    assert all(p["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"} for p in shipped)
    strip = [{**p, "metadata": {k: v for k, v in p["metadata"].items() if k != "annotations"}} for p in shipped]
    assert sorted(strip, key=lambda p: p["metadata"]["name"]) == sorted(policies(), key=lambda p: p["metadata"]["name"])
    rendered = {
        b["metadata"]["name"]: b["spec"]
        for b in docs["ValidatingAdmissionPolicyBinding"] + docs["MutatingAdmissionPolicyBinding"]
    }
    selector = docs["ValidatingAdmissionPolicyBinding"][0]["spec"]["matchResources"]["namespaceSelector"]
    assert rendered == {b["metadata"]["name"]: b["spec"] for b in bindings("ops-stratops", selector)}
    # a second release binds the policies another release installed
    others = kinds(render("admissionPolicies.installPolicies=false"))
    assert "ValidatingAdmissionPolicy" not in others and len(others["ValidatingAdmissionPolicyBinding"]) == 5


def test_dashboard_queries_are_valid_promql(tmp_path):
    """Each panel's query, with Grafana's variables filled in, checked by promtool as a rule."""
    promtool = monitoring_binary("promtool")
    dashboard = json.loads((CHART / "dashboards" / "stratops.json").read_text())
    exprs = [
        t["expr"].replace("$__range", "1h").replace("$namespace", ".*")
        for p in dashboard["panels"]
        for t in p["targets"]
    ]
    rules = {
        "groups": [
            {"name": "dashboard", "rules": [{"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(exprs)]}
        ]
    }
    f = tmp_path / "dashboard-rules.yaml"
    f.write_text(yaml.safe_dump(rules))
    out = subprocess.run([promtool, "check", "rules", str(f)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in out.stdout


def test_trader_and_risk_owner_roles_are_bound_in_each_served_namespace(tmp_path):
    docs = render(
        values={
            "watch": {"namespaces": ["fx", "rates"]},
            "rbac": {
                "userRoles": {
                    "traders": [{"kind": "Group", "name": "fx-traders"}],
                    "riskOwners": [{"name": "risk-officer"}],
                }
            },
        },
        tmp=tmp_path,
    )
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in docs if d["kind"] == "Role"}
    assert not [d for d in docs if d["kind"].startswith("Cluster")], "namespaced unless cluster-wide"
    trader, risk = roles[("fx", "ops-stratops-trader")], roles[("rates", "ops-stratops-risk-owner")]
    can = lambda role, res, verb: any(res in r["resources"] and verb in r["verbs"] for r in role["rules"])  # noqa: E731
    for role in (trader, risk):
        assert can(role, "strategies", "patch") and can(role, "gates", "patch") and can(role, "auditsegments", "list")
        # people write no ConfigMap (no shadow control or ack document) and no audit record
        assert not can(role, "configmaps", "create") and not can(role, "auditsegments", "create")
        assert (
            not can(role, "strategies", "update")
            and not can(role, "deployments", "patch")
            and not can(role, "secrets", "get")
        )
    assert can(risk, "incidents", "create") and not can(trader, "incidents", "create")
    bindings = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in docs if d["kind"] == "RoleBinding"}
    for ns in ("fx", "rates"):
        assert bindings[(ns, "ops-stratops-trader")]["subjects"] == [
            {"kind": "Group", "name": "fx-traders", "apiGroup": "rbac.authorization.k8s.io"}
        ]
        assert bindings[(ns, "ops-stratops-risk-owner")]["subjects"][0]["name"] == "risk-officer"
    with pytest.raises(HelmError, match="userRoles"):
        render(values={"rbac": {"userRoles": {"traders": [{"kind": "Robot", "name": "x"}]}}}, tmp=tmp_path)


def test_secrets_by_name_and_spec_through_git_only(tmp_path):
    docs = kinds(render("rbac.secretNames={prom-token}", "rbac.userRoles.specThroughGitOpsOnly=true"))
    (role,) = [r for r in docs["Role"] if r["metadata"]["name"] == "ops-stratops"]
    [rule] = [r for r in role["rules"] if "secrets" in r["resources"]]
    assert rule["resourceNames"] == ["prom-token"] and rule["verbs"] == ["get"]
    roles = {r["metadata"]["name"]: r for r in docs["Role"]}
    verbs = lambda name: {v for r in roles[name]["rules"] for v in r["verbs"] if "strategies" in r["resources"]}  # noqa: E731
    assert "edit-spec" not in verbs("ops-stratops-trader") and "patch" in verbs("ops-stratops-trader")
    assert "edit-spec" in verbs("ops-stratops-gitops")
    assert "edit-spec" in {
        v
        for r in kinds(render())["Role"]
        if r["metadata"]["name"] == "ops-stratops-trader"
        for rule in r["rules"]
        if "strategies" in rule["resources"]
        for v in rule["verbs"]
    }
