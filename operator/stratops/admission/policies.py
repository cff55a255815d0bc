"""Admission policies evaluated by the API server itself (CEL): they need no operator state, so
they hold while every operator replica is down, and no webhook can fail them open.

What they enforce:
- attribution: a command annotation (`stratops.io/kill`, …) must begin `{"by": "<the requesting
  user>"`; the operator parses it with duplicate keys refused, so the `by` it reads is the one
  checked here. Identities holding the RBAC verb `command-for-others` (a ChatOps bot) may name
  someone else;
- re-arm: `stratops.io/rearm` must name a user of `spec.killSwitch.rearmBy` as it was *before*
  the request, so nobody can add themselves and re-arm in one patch;
- kill-switch settings change only by holders of `configure-kill-switch` (risk owners, GitOps);
- a spec changes only for holders of `edit-spec` (people by default; only GitOps with the chart's
  `rbac.userRoles.specThroughGitOpsOnly`), while commands stay everyone's;
- the author of the trading-relevant spec and of the mode are recorded at admission
  (`stratops.io/trading-author`, `stratops.io/mode-author`, set by the mutating policies) and
  cannot be forged or edited: the four-eyes rule of pre-launch signatures reads them;
- gate signatures: a new or changed signature names the requesting user, only its signer may
  remove or alter it, an item that names groups is signed only by their members, and a gate's
  checklist (items, strategies, minSigners, session) is changed only by holders of
  `edit-checklist` and is frozen once signed (GitOps identities, `sign-for-others`, excepted);
- acknowledgements: a strategy's pods (its ServiceAccount, `<strategy>-strategy`) write to its
  ack ConfigMap only the key of their own pod, as the pod-bound token names it
  (`authentication.kubernetes.io/pod-name`); RBAC keeps them out of every other ConfigMap;
- the operator's Deployments: an identity holding `deploy-strategy-pods` (the operator's) creates
  or updates only Deployments of a strategy (its label) whose pods run as that strategy's own
  ServiceAccount (`<strategy>-strategy`), outside the host's namespaces, with no hostPath volume
  and no privileged container. A stolen operator token cannot run a pod as any other
  ServiceAccount of the namespace, or on the host. Administrators (every verb: `*`) are not held
  to it.

The RBAC verbs above exist only for these checks: the authorizer is asked whether the requesting
user holds them on the object (the chart grants them; cluster-admin holds every verb).
"""

from __future__ import annotations

from typing import Any

from stratops import GROUP, VERSION

# RBAC verbs that exist only for the checks here (granted by the chart's roles).
VERB_COMMAND_FOR_OTHERS = "command-for-others"  # strategies, incidents: a ChatOps bot or risk gateway
VERB_CONFIGURE_KILL_SWITCH = "configure-kill-switch"  # strategies: risk owners, GitOps
VERB_EDIT_CHECKLIST = "edit-checklist"  # gates: risk owners, GitOps
VERB_SIGN_FOR_OTHERS = "sign-for-others"  # gates: GitOps identities (signatures reviewed in Git)
VERB_EDIT_SPEC = "edit-spec"  # strategies: who may change a spec at all (people, unless only Git may)
VERB_DEPLOY_STRATEGY_PODS = "deploy-strategy-pods"  # strategies: the operator (its Deployments are held to the policy)

ANNOTATION_TRADING_AUTHOR = f"{GROUP}/trading-author"
ANNOTATION_MODE_AUTHOR = f"{GROUP}/mode-author"
STRATEGY_COMMANDS = (
    "kill",
    "throttle",
    "rollback",
    "resume",
    "reconciliation",
    "failover",
    "rearm",
    "runbook",
    "release",
)
INCIDENT_COMMANDS = ("ack", "contain", "resolve")

POLICY_STRATEGIES = f"stratops-strategies.{GROUP}"
POLICY_INCIDENTS = f"stratops-incidents.{GROUP}"
POLICY_GATES = f"stratops-gates.{GROUP}"
POLICY_TRADING_AUTHOR = f"stratops-trading-author.{GROUP}"
POLICY_MODE_AUTHOR = f"stratops-mode-author.{GROUP}"
POLICY_ACKS = f"stratops-acks.{GROUP}"
POLICY_DEPLOYMENTS = f"stratops-deployments.{GROUP}"
VALIDATING = (POLICY_STRATEGIES, POLICY_INCIDENTS, POLICY_GATES, POLICY_ACKS, POLICY_DEPLOYMENTS)
MUTATING = (POLICY_TRADING_AUTHOR, POLICY_MODE_AUTHOR)

# Whether the trading-relevant spec changed (stratops.models.strategy.TRADING_FIELDS). Absent
# optional blocks compare as absent: adding `killSwitch: {}` counts as a change.
TRADING_CHANGED = " || ".join(
    [
        "object.spec.image != oldObject.spec.image",
        "object.spec.version != oldObject.spec.version",
        "object.spec.?replicas.orValue(1) != oldObject.spec.?replicas.orValue(1)",
        "object.spec.riskLimits != oldObject.spec.riskLimits",
        "object.spec.brokers != oldObject.spec.brokers",
        "object.spec.?podTemplate != oldObject.spec.?podTemplate",
        "object.spec.?killSwitch != oldObject.spec.?killSwitch",
        "object.spec.?throttle != oldObject.spec.?throttle",
    ]
)
MODE_CHANGED = "object.spec.?mode.orValue('paper') != oldObject.spec.?mode.orValue('paper')"
CHECKLIST_UNCHANGED = " && ".join(
    [
        "object.spec.items == oldObject.spec.items",
        "object.spec.strategies == oldObject.spec.strategies",
        "object.spec.?minSigners == oldObject.spec.?minSigners",
        "object.spec.?session == oldObject.spec.?session",
    ]
)


def _authorized(resource: str, verb: str) -> str:
    return (
        f"authorizer.group('{GROUP}').resource('{resource}').namespace(object.metadata.namespace)"
        f".name(object.metadata.name).check('{verb}').allowed()"
    )


def _rule(resources: list[str], operations: tuple[str, ...] = ("CREATE", "UPDATE")) -> dict[str, Any]:
    return {
        "resourceRules": [
            {"apiGroups": [GROUP], "apiVersions": [VERSION], "operations": list(operations), "resources": resources}
        ]
    }


def _policy(
    name: str, resources: list[str], variables: list[tuple[str, str]], validations: list[dict[str, str]], **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "stratops"}},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": _rule(resources),
            **spec,
            "variables": [{"name": n, "expression": e} for n, e in variables],
            "validations": [{"reason": "Forbidden", **v} for v in validations],
        },
    }


def _command_checks(resource: str, commands: tuple[str, ...]) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """Variables and validations: each added or changed command annotation begins with
    {"by": "<requesting user>"} (or any `by`, for holders of command-for-others)."""
    keys = ", ".join(f"'{GROUP}/{c}'" for c in commands)
    variables = [
        ("user", "request.userInfo.username"),
        ("ann", "object.metadata.?annotations.orValue({})"),
        ("oldAnn", "oldObject == null ? {} : oldObject.metadata.?annotations.orValue({})"),
        ("byUser", "'{\"by\": \"' + variables.user + '\"'"),
        (
            "changedCommands",
            f"[{keys}].filter(k, k in variables.ann && (!(k in variables.oldAnn) || "
            "variables.oldAnn[k] != variables.ann[k]))",
        ),
        ("forOthers", _authorized(resource, VERB_COMMAND_FOR_OTHERS)),
        # Not the authorizer in a variable that a message reads: message expressions cannot call it.
        (
            "notByUser",
            "variables.changedCommands.filter(k, !(variables.ann[k].startsWith(variables.byUser + ',') || "
            "variables.ann[k] == variables.byUser + '}'))",
        ),
    ]
    validations = [
        {
            "expression": (
                "size(variables.notByUser) == 0 || (variables.forOthers && "
                'variables.notByUser.all(k, variables.ann[k].startsWith(\'{"by": "\')))'
            ),
            "messageExpression": (
                "'metadata.annotations[' + variables.notByUser[0] + ']: a command must begin {\"by\": \"' + "
                "variables.user + '\", …}: it is recorded as given by the user who makes the request (the stratops CLI "
                "writes it so)'"
            ),
        }
    ]
    return variables, validations


def strategies_policy() -> dict[str, Any]:
    variables, validations = _command_checks("strategies", STRATEGY_COMMANDS)
    variables += [
        ("rearmers", "oldObject == null ? [] : oldObject.spec.?killSwitch.?rearmBy.orValue([])"),
        ("configuresKillSwitch", _authorized("strategies", VERB_CONFIGURE_KILL_SWITCH)),
        ("editsSpec", _authorized("strategies", VERB_EDIT_SPEC)),
        ("tradingChanged", f"request.operation == 'CREATE' || {TRADING_CHANGED}"),
        ("modeChanged", f"request.operation == 'CREATE' || {MODE_CHANGED}"),
    ]
    validations += [
        {
            "expression": (
                f"!('{GROUP}/rearm' in variables.changedCommands) || variables.rearmers.exists(u, "
                f"variables.ann['{GROUP}/rearm'].startsWith('{{\"by\": \"' + u + '\"'))"
            ),
            "messageExpression": (
                "'metadata.annotations[stratops.io/rearm]: the re-arm must be given by one of spec.killSwitch.rearmBy "
                "as it was before this request (' + (size(variables.rearmers) == 0 ? 'nobody' : "
                "variables.rearmers.join(', ')) + '), not ' + variables.user"
            ),
        },
        {
            "expression": "request.operation == 'CREATE' || object.spec == oldObject.spec || variables.editsSpec",
            "messageExpression": (
                "'spec: ' + variables.user + ' may give commands but not change the spec here: it changes through Git "
                f"(RBAC verb {VERB_EDIT_SPEC} on strategies.stratops.io)'"
            ),
        },
        {
            "expression": (
                "variables.configuresKillSwitch || (request.operation == 'CREATE' ? "
                "size(object.spec.?killSwitch.?rearmBy.orValue([])) == 0 : "
                "object.spec.?killSwitch == oldObject.spec.?killSwitch)"
            ),
            "messageExpression": (
                "'spec.killSwitch: ' + variables.user + ' may not change kill-switch settings (ackDeadline, "
                "allowRiskReducing, rearmBy): only risk owners and GitOps identities may (RBAC verb "
                f"{VERB_CONFIGURE_KILL_SWITCH} on strategies.stratops.io)'"
            ),
        },
        {
            "expression": (
                f"variables.tradingChanged ? variables.ann[?'{ANNOTATION_TRADING_AUTHOR}'] == "
                f"optional.of(variables.user) : variables.ann[?'{ANNOTATION_TRADING_AUTHOR}'] == "
                f"variables.oldAnn[?'{ANNOTATION_TRADING_AUTHOR}']"
            ),
            "messageExpression": (
                f"'metadata.annotations[{ANNOTATION_TRADING_AUTHOR}]: records who last changed the trading-relevant "
                "spec; it is set at admission (MutatingAdmissionPolicy " + POLICY_TRADING_AUTHOR + ") and cannot be "
                "written by hand'"
            ),
        },
        {
            "expression": (
                f"variables.modeChanged ? variables.ann[?'{ANNOTATION_MODE_AUTHOR}'] == "
                f"optional.of(variables.user) : variables.ann[?'{ANNOTATION_MODE_AUTHOR}'] == "
                f"variables.oldAnn[?'{ANNOTATION_MODE_AUTHOR}']"
            ),
            "messageExpression": (
                f"'metadata.annotations[{ANNOTATION_MODE_AUTHOR}]: records who last changed spec.mode; it is set at "
                "admission (MutatingAdmissionPolicy " + POLICY_MODE_AUTHOR + ") and cannot be written by hand'"
            ),
        },
    ]
    return _policy(POLICY_STRATEGIES, ["strategies"], variables, validations)


def incidents_policy() -> dict[str, Any]:
    variables, validations = _command_checks("incidents", INCIDENT_COMMANDS)
    return _policy(POLICY_INCIDENTS, ["incidents"], variables, validations)


def gates_policy() -> dict[str, Any]:
    variables = [
        ("user", "request.userInfo.username"),
        ("groups", "request.userInfo.?groups.orValue([])"),
        ("sigs", "object.spec.?signatures.orValue([])"),
        ("oldSigs", "oldObject == null ? [] : oldObject.spec.?signatures.orValue([])"),
        ("added", "variables.sigs.filter(s, !variables.oldSigs.exists(o, o == s))"),
        ("removed", "variables.oldSigs.filter(o, !variables.sigs.exists(s, s == o))"),
        ("forOthers", _authorized("gates", VERB_SIGN_FOR_OTHERS)),
        ("editsChecklist", _authorized("gates", VERB_EDIT_CHECKLIST)),
        ("notMine", "variables.added.filter(s, s.signer != variables.user)"),
        ("othersRemoved", "variables.removed.filter(o, o.signer != variables.user)"),
        (
            "wrongGroup",
            "variables.added.filter(s, !object.spec.items.exists(i, i.id == s.item && "
            "(size(i.?signers.orValue([])) == 0 || i.signers.exists(g, g in variables.groups))))",
        ),
        ("checklistUnchanged", f"request.operation == 'CREATE' || ({CHECKLIST_UNCHANGED})"),
    ]
    validations = [
        {
            "expression": "variables.forOthers || size(variables.notMine) == 0",
            "messageExpression": (
                "'spec.signatures[' + variables.notMine[0].item + ']: signer is ' + variables.notMine[0].signer + "
                "' but the request is made by ' + variables.user + '; sign as yourself (stratops gate sign), or apply "
                f"signatures reviewed in Git through a GitOps identity (RBAC verb {VERB_SIGN_FOR_OTHERS})'"
            ),
        },
        {
            "expression": "variables.forOthers || size(variables.othersRemoved) == 0",
            "messageExpression": (
                "'spec.signatures[' + variables.othersRemoved[0].item + ']: signed by ' + "
                "variables.othersRemoved[0].signer + '; only they may change or remove their signature'"
            ),
        },
        {
            "expression": "variables.forOthers || size(variables.wrongGroup) == 0",
            "messageExpression": (
                "'spec.signatures[' + variables.wrongGroup[0].item + ']: item ' + variables.wrongGroup[0].item + "
                "' may be signed only by members of ' + object.spec.items.filter(i, i.id == "
                "variables.wrongGroup[0].item).map(i, i.?signers.orValue([]).join(', ')).join('') + "
                "'; ' + variables.user + ' is in ' + (size(variables.groups) == 0 ? 'no group' : "
                "variables.groups.join(', '))"
            ),
        },
        {
            "expression": "variables.checklistUnchanged || variables.forOthers || variables.editsChecklist",
            "messageExpression": (
                "'spec: ' + variables.user + ' may sign this gate but not change its checklist (spec.items, "
                "strategies, minSigners, session): only risk owners and GitOps identities may (RBAC verb "
                f"{VERB_EDIT_CHECKLIST} on gates.stratops.io)'"
            ),
        },
        {
            "expression": "variables.checklistUnchanged || variables.forOthers || size(variables.oldSigs) == 0",
            "message": (
                "spec: the checklist (spec.items, strategies, minSigners, session) is frozen once the gate "
                "carries a signature; change it through Git (a GitOps identity), or remove the signatures first"
            ),
        },
    ]
    return _policy(POLICY_GATES, ["gates"], variables, validations)


def acks_policy() -> dict[str, Any]:
    """A strategy pod writes only its own acknowledgement (see the module's docstring)."""
    from stratops.lifecycle.manifests import LABEL_COMPONENT, LABEL_STRATEGY, identity_name

    sa = identity_name("' + oldObject.metadata.labels['" + LABEL_STRATEGY + "'] + '")
    variables = [
        (
            "pod",
            "size(request.userInfo.extra[?'authentication.kubernetes.io/pod-name'].orValue([])) == 1 ? "
            "request.userInfo.extra['authentication.kubernetes.io/pod-name'][0] : ''",
        ),
        ("old", "oldObject.?data.orValue({})"),
        ("new", "object.?data.orValue({})"),
        (
            "changed",
            "variables.new.filter(k, !(k in variables.old) || variables.old[k] != variables.new[k]) + "
            "variables.old.filter(k, !(k in variables.new))",
        ),
    ]
    validations = [
        {
            "expression": "variables.pod != ''",
            "message": (
                "an acknowledgement is written with the pod's own token (bound to the pod: "
                "authentication.kubernetes.io/pod-name), not a token of the ServiceAccount alone"
            ),
        },
        {
            "expression": "variables.changed.all(k, k == variables.pod)",
            "messageExpression": (
                "'data[' + variables.changed.filter(k, k != variables.pod)[0] + ']: pod ' + variables.pod + "
                "' may write only its own acknowledgement (data[' + variables.pod + '])'"
            ),
        },
        {
            "expression": (
                "object.metadata.?labels == oldObject.metadata.?labels && "
                "object.metadata.?ownerReferences == oldObject.metadata.?ownerReferences && "
                "object.?binaryData == oldObject.?binaryData"
            ),
            "message": "metadata.labels, metadata.ownerReferences, binaryData: the operator's; a strategy pod writes "
            "only data",
        },
    ]
    policy = _policy(POLICY_ACKS, [], variables, validations)
    policy["spec"]["matchConstraints"] = {
        "resourceRules": [
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["configmaps"]}
        ],
        "objectSelector": {"matchLabels": {LABEL_COMPONENT: "ack"}},
    }
    # Only the strategy's own pods are held to this (the operator, which makes and takes over
    # the ConfigMap, is not): the identity is read from the object as it was.
    policy["spec"]["matchConditions"] = [
        {
            "name": "strategy-pods",
            "expression": (
                f"has(oldObject.metadata.labels) && '{LABEL_STRATEGY}' in oldObject.metadata.labels && "
                f"request.userInfo.username == 'system:serviceaccount:' + oldObject.metadata.namespace + ':{sa}'"
            ),
        }
    ]
    return policy


def deployments_policy() -> dict[str, Any]:
    """The operator's Deployments run strategy pods as the strategy's own identity (see the module's docstring)."""
    from stratops.lifecycle.manifests import LABEL_STRATEGY, identity_name

    pod = "object.spec.template.spec"
    variables = [
        ("strategy", f"object.metadata.?labels[?'{LABEL_STRATEGY}'].orValue('')"),
        ("identity", "'" + identity_name("' + variables.strategy + '") + "'"),
        ("containers", f"{pod}.containers + {pod}.?initContainers.orValue([])"),
    ]
    validations = [
        {
            "expression": "variables.strategy != ''",
            "message": (
                f"metadata.labels[{LABEL_STRATEGY}]: the operator makes Deployments of strategies only "
                "(its own pods' identity is held to the strategy's)"
            ),
        },
        {
            "expression": f"{pod}.?serviceAccountName.orValue('') == variables.identity",
            "messageExpression": (
                "'spec.template.spec.serviceAccountName: ' + " + pod + ".?serviceAccountName.orValue('(none)') + "
                "': the pods of strategy ' + variables.strategy + ' run as its own ServiceAccount ' + "
                "variables.identity"
            ),
        },
        {
            "expression": (
                f"!{pod}.?hostNetwork.orValue(false) && !{pod}.?hostPID.orValue(false) && "
                f"!{pod}.?hostIPC.orValue(false)"
            ),
            "message": "spec.template.spec: a strategy pod never uses the host's network, PID or IPC namespace",
        },
        {
            "expression": f"{pod}.?volumes.orValue([]).all(v, !has(v.hostPath))",
            "message": "spec.template.spec.volumes: a strategy pod mounts no hostPath volume",
        },
        {
            "expression": "variables.containers.all(c, !c.?securityContext.?privileged.orValue(false))",
            "message": "spec.template.spec.containers[].securityContext.privileged: a strategy pod is never privileged",
        },
    ]
    policy = _policy(POLICY_DEPLOYMENTS, [], variables, validations)
    policy["spec"]["matchConstraints"] = {
        "resourceRules": [
            {
                "apiGroups": ["apps"],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["deployments"],
            }
        ]
    }
    # Held to it: who holds the operator's verb, but not every verb (an administrator, `*`:
    # RBAC grants a request for the verb "*" only to a rule whose verbs are "*").
    who = "authorizer.group('" + GROUP + "').resource('strategies').namespace(object.metadata.namespace)"
    policy["spec"]["matchConditions"] = [
        {
            "name": "the-operator",
            "expression": (f"{who}.check('{VERB_DEPLOY_STRATEGY_PODS}').allowed() && !{who}.check('*').allowed()"),
        }
    ]
    return policy


def _author_policy(name: str, annotation: str, changed: str) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "stratops"}},
        "spec": {
            "failurePolicy": "Fail",
            "reinvocationPolicy": "Never",
            "matchConstraints": _rule(["strategies"]),
            "matchConditions": [{"name": "changed", "expression": f"request.operation == 'CREATE' || {changed}"}],
            # A JSON patch, not an apply configuration: that one converts the object to its typed
            # form first and fails on a malformed one, before the schema could name the field.
            "mutations": [
                {
                    "patchType": "JSONPatch",
                    "jsonPatch": {
                        "expression": (
                            "has(object.metadata.annotations) ? [JSONPatch{op: 'add', path: '/metadata/annotations/' + "
                            f"jsonpatch.escapeKey('{annotation}'), value: request.userInfo.username}}] : "
                            "[JSONPatch{op: 'add', path: '/metadata/annotations', "
                            f"value: {{'{annotation}': request.userInfo.username}}}}]"
                        )
                    },
                }
            ],
        },
    }


def policies() -> list[dict[str, Any]]:
    """Every policy, as the chart ships it (charts/stratops/files/admission-policies.yaml)."""
    return [
        strategies_policy(),
        incidents_policy(),
        gates_policy(),
        acks_policy(),
        deployments_policy(),
        _author_policy(POLICY_TRADING_AUTHOR, ANNOTATION_TRADING_AUTHOR, TRADING_CHANGED),
        _author_policy(POLICY_MODE_AUTHOR, ANNOTATION_MODE_AUTHOR, MODE_CHANGED),
    ]


def bindings(name_prefix: str, namespace_selector: dict[str, Any]) -> list[dict[str, Any]]:
    """The bindings of every policy to the served namespaces (the chart renders the same)."""
    out: list[dict[str, Any]] = []
    for kind, names in (("ValidatingAdmissionPolicyBinding", VALIDATING), ("MutatingAdmissionPolicyBinding", MUTATING)):
        for policy in names:
            spec: dict[str, Any] = {"policyName": policy, "matchResources": {"namespaceSelector": namespace_selector}}
            if kind.startswith("Validating"):
                spec["validationActions"] = ["Deny"]
            out.append(
                {
                    "apiVersion": "admissionregistration.k8s.io/v1",
                    "kind": kind,
                    "metadata": {
                        "name": f"{name_prefix}-{policy.split('.')[0].removeprefix('stratops-')}",
                        "labels": {"app.kubernetes.io/part-of": "stratops"},
                    },
                    "spec": spec,
                }
            )
    return out


CHART_FILE = "charts/stratops/files/admission-policies.yaml"


def render_policies() -> str:
    """The policies as the chart ships them (CHART_FILE; `make crds` writes it, a test compares)."""
    import yaml

    head = (
        "# Generated by `stratops crds` from stratops.admission.policies: do not edit by hand.\n"
        "# The API server's own checks (CEL): they hold while every operator replica is down.\n"
    )
    return head + "---\n".join(yaml.safe_dump(p, sort_keys=False, width=120) for p in policies())
