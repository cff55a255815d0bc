"""The Helm chart as rendered by a real helm (built from its Go module by hack/build-helm.sh), and
the chart's people Roles put in force on a local cluster: for the tests and the soak, which act
as a desk's traders, risk owners and GitOps controller with exactly the rights the chart gives."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from stratops import GROUP
from stratops.testing.controlplane import repo_root
from stratops.testing.wait import wait_for

#: The chart's Roles for people (and the GitOps controller), by the suffix of their names.
PEOPLE_ROLES = ("-trader", "-risk-owner", "-gitops", "-command-delegate")
#: The groups the chart binds by default (values.yaml rbac.userRoles).
TRADERS, RISK_OWNERS = "stratops:traders", "stratops:risk-owners"


class HelmError(Exception):
    pass


def chart_dir() -> Path:
    root = repo_root()
    if root is None:
        raise HelmError("the chart is read from a stratops checkout: run from one")
    return root / "charts" / "stratops"


@functools.cache
def helm_binary() -> str:
    """The pinned helm from the cache, built on first use (HelmError when it cannot be)."""
    out = subprocess.run(
        ["bash", str(chart_dir().parent.parent / "hack" / "build-helm.sh")], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise HelmError(f"helm cannot be built: {out.stderr.strip()[-500:]}")
    return out.stdout.strip().splitlines()[-1]


def render(
    *sets: str,
    namespace: str = "desk",
    release: str = "ops",
    crds: bool = False,
    values: dict[str, Any] | None = None,
    tmp: Path | None = None,
    helm: str | None = None,
) -> list[dict[str, Any]]:
    """`helm template` the chart; the documents, or HelmError with helm's message."""
    args = [helm or helm_binary(), "template", release, str(chart_dir()), "--namespace", namespace]
    if crds:
        args.append("--include-crds")
    for s in sets:
        args += ["--set", s]
    if values is not None:
        assert tmp is not None, "values are written to a file in TMP"
        f = tmp / "values.yaml"
        f.write_text(yaml.safe_dump(values))
        args += ["--values", str(f)]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        raise HelmError(out.stderr)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def grant_people_roles(
    api: client.ApiClient,
    namespace: str,
    tmp: Path,
    people: dict[str, tuple[str, ...]],
    gitops: str | None = None,
    **user_roles: Any,
) -> None:
    """The chart's trader, risk-owner and GitOps Roles in NAMESPACE as rendered, bound as the chart
    binds them (the groups for people, GITOPS by name; USER_ROLES: more of rbac.userRoles); then
    wait until the authorizer holds them for each of PEOPLE (user -> groups) and GITOPS."""
    if gitops:
        user_roles = {"gitops": [{"kind": "User", "name": gitops}], **user_roles}
    docs = render(namespace=namespace, values={"rbac": {"userRoles": user_roles}}, tmp=tmp)
    rbac = client.RbacAuthorizationV1Api(api)
    for d in docs:
        if d["kind"] in ("Role", "RoleBinding") and d["metadata"]["name"].endswith(PEOPLE_ROLES):
            d["metadata"]["namespace"] = namespace
            (rbac.create_namespaced_role if d["kind"] == "Role" else rbac.create_namespaced_role_binding)(namespace, d)
    authz = client.AuthorizationV1Api(api)

    def may(user: str, groups: tuple[str, ...], verb: str, resource: str) -> bool:
        review = {
            "spec": {
                "user": user,
                "groups": list(groups),
                "resourceAttributes": {"namespace": namespace, "group": GROUP, "resource": resource, "verb": verb},
            }
        }
        return bool(authz.create_subject_access_review(review).status.allowed)

    def in_force() -> bool:
        if gitops and not may(gitops, (), "sign-for-others", "gates"):
            return False
        return all(
            may(user, groups, "patch", "strategies")
            and (RISK_OWNERS not in groups or may(user, groups, "configure-kill-switch", "strategies"))
            for user, groups in people.items()
        )

    wait_for(in_force, timeout=30, what="the chart's roles in force")
