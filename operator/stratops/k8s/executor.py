"""Carry out a lifecycle plan against the API server, in an order that survives a crash.

Order: control document, Deployment, incidents, strategy status, events, and last the removal
of command annotations. A crash anywhere leaves enough behind for the next reconcile to finish
the job without doing anything twice: the control document is compared by content, the
Deployment by fingerprint, incident names are deterministic (a second create is a 409), and a
command left on the object is recognised by its id in status.handledCommands.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from stratops import API_VERSION, GROUP, VERSION
from stratops.audit import entry_seq
from stratops.k8s.client import drop_managed_fields
from stratops.lifecycle import manifests
from stratops.lifecycle.control import CONTROL_KEY
from stratops.lifecycle.decide import OPERATOR
from stratops.lifecycle.observe import ConfigMapView, configmap_view
from stratops.lifecycle.types import Plan, Stored
from stratops.models.strategy import StrategyStatus

log = logging.getLogger("stratops.executor")
#: How long after creating an ack ConfigMap the index may still not show it (seconds).
ACK_INDEX_LAG = 10.0
#: How long after writing a Deployment the index may still not show the write (seconds).
DEPLOYMENT_INDEX_LAG = 10.0
COMPONENT = "stratops-operator"


def namespace_terminating(e: BaseException) -> bool:
    """The API server refused to create an object because its namespace is being deleted (403,
    cause NamespaceTerminating): expected while a namespace goes, not a failure."""
    body = str(e.body or "") if isinstance(e, ApiException) else ""
    return (
        isinstance(e, ApiException)
        and e.status == 403
        and ("NamespaceTerminating" in body or "because it is being terminated" in body)
    )


#: The label that says which findings an incident groups (stratops.monitors.decide.STALE_GROUP).
LABEL_GROUP = "stratops.io/group"


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _version(obj: Any) -> str | None:
    return ((obj.get("metadata") or {}).get("resourceVersion") or None) if isinstance(obj, dict) else None


class KnownStrategy:
    """What this process knows of one Strategy as stored, beyond its watched body.

    WRITTEN: the resourceVersion its last write of it left ("" when not known: refused, or its
    answer lost; None: never written). NEWEST: until the watch shows it, the newest object this
    process wrote or read, and SUPERSEDED: versions known older than it."""

    #: Superseded versions kept: enough for the events a burst of passes lags behind.
    KEPT = 16

    def __init__(self) -> None:
        self.written: str | None = None
        self.newest: dict[str, Any] | None = None
        self.superseded: tuple[str, ...] = ()
        #: The newest's version, once the watch has shown it and the object is let go.
        self.shown: str | None = None

    def newest_version(self) -> str | None:
        return _version(self.newest) or self.shown

    def hold(self, obj: dict[str, Any], over: str | None) -> None:
        """OBJ is the newest known; OVER (the version it was written or read over) and the one
        held before it are superseded. Held without its managedFields, which no decision reads."""
        older = tuple(v for v in (self.newest_version(), over) if v and v not in self.superseded)
        meta = obj.get("metadata")
        if isinstance(meta, dict) and "managedFields" in meta:
            obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
        self.newest, self.shown, self.superseded = obj, None, (self.superseded + older)[-self.KEPT :]

    def watched(self, version: str | None) -> None:
        """The watch showed the Strategy at VERSION. At the newest held, the watched body is as
        fresh, and the object is let go (issue 21: else a whole Strategy was held per strategy
        for as long as it rests, its last pass having written it). A hold racing this (another
        thread) may be let go too: the next pass then decides on the watched body, and a status
        write over it is a 409 if it lags, then read."""
        held = self.newest
        if version and held is not None and _version(held) == version:
            self.newest, self.shown = None, version

    def wrote(self, out: Any, over: str | None) -> None:
        """This process's write over OVER returned OUT."""
        self.written = _version(out) or ""
        if self.written:
            self.hold(out, over)
        else:
            self.caught_up()

    def unknown(self) -> None:
        """A write refused or lost: what is stored is not known; read before the next write."""
        self.written = ""
        self.caught_up()

    def caught_up(self) -> None:
        """Nothing held: the watch shows it, or it is no longer known to be the newest."""
        self.newest, self.shown, self.superseded = None, None, ()


class Executor:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._core = client.CoreV1Api(api)
        self._apps = client.AppsV1Api(api)
        self._custom = client.CustomObjectsApi(api)
        self._rbac = client.RbacAuthorizationV1Api(api)
        self.identities: set[str] = set()  # strategy uids whose identity this process has ensured
        #: When this process last made sure of a strategy's ack ConfigMap (by uid): the index
        #: lags its create, and a second create in that window would only be a 409.
        self.acks_ensured: dict[str, float] = {}
        # The control document this process last wrote per strategy, recorded as the write
        # succeeds: the status that records it may fail to be written after it (a conflict), and
        # the next decision must still know the document for the operator's own, not drift.
        self.written_control: dict[tuple[str, str], Any] = {}
        #: The Deployment this process last wrote per strategy, as the API server answered, and
        #: when (monotonic): a pass while the index still lags that write decides on it, where it
        #: would create or replace it again (409s, and the identity ensured again with it).
        self.written_deployments: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        #: What this process knows of each Strategy as stored beyond its watched body (its own
        #: writes and reads): the watched body may lag them under load. See current_strategy.
        self.strategies_known: dict[tuple[str, str], KnownStrategy] = {}
        from stratops.k8s.audit import AuditLog

        self.audit = AuditLog(self._custom)

    # -- reads -----------------------------------------------------------------------------
    def current_strategy(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The Strategy as stored now, to decide on and write over, with BODY the watched one;
        None if it is gone. BODY itself when it is known current: at the version this process's
        last write left, at the newest it holds, or new (no status, never written by this process:
        it cannot lag a write of this process; no finalizer patch of kopf's follows it).
        The newest object held when BODY is at a version known superseded (under load, an owned
        object's event pokes a pass before the Strategy's own event for this process's last write
        or read arrives). Otherwise a read, which then answers the next pass on a body still at
        that version. Each is as fresh as a read: a write by anyone since makes the status write,
        made at that object's resourceVersion, a 409, and the pass after it reads."""
        key = (namespace, name)
        rv = (body.get("metadata") or {}).get("resourceVersion")
        known = self.strategies_known.get(key)
        if (known is None or known.written is None) and not body.get("status"):
            return body
        if known is not None and rv:
            if rv in (known.written, known.newest_version()):
                known.caught_up()
                return body
            newest = known.newest  # once: the kill watch's thread may let go of it meanwhile
            if rv in known.superseded and newest is not None:
                return copy.deepcopy(newest)
        fresh = self.read_strategy(namespace, name)
        fresh_rv = ((fresh or {}).get("metadata") or {}).get("resourceVersion")
        if fresh is not None and fresh_rv and rv and fresh_rv != rv:
            self.strategies_known.setdefault(key, KnownStrategy()).hold(copy.deepcopy(fresh), over=rv)
        return fresh

    def watched_strategy(self, namespace: str, name: str, version: str | None) -> None:
        """The watch showed the Strategy at VERSION (KnownStrategy.watched)."""
        if (known := self.strategies_known.get((namespace, name))) is not None:
            known.watched(version)

    def forget_strategy(self, namespace: str, name: str) -> None:
        """Its daemon ended (deleted, or this replica paused): nothing held for it."""
        self.strategies_known.pop((namespace, name), None)

    def read_strategy(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "strategies", name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def read_gate(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "gates", name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def read_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            out = self._core.read_namespaced_config_map(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        body: dict[str, Any] = self.api.sanitize_for_serialization(out)
        return body

    def read_control_view(self, namespace: str, strategy: str) -> tuple[ConfigMapView | None, str]:
        """The strategy's control ConfigMap as read live (not from an index) and its
        resourceVersion ("" when there is none, the precondition for a create). The caller still
        decides, with owned_documents, whether it is the operator's own."""
        live = self.read_configmap(namespace, manifests.control_name(strategy))
        if live is None:
            return None, ""
        meta = live.get("metadata") or {}
        view = configmap_view(live, (meta.get("labels") or {}).get(manifests.LABEL_COMPONENT, ""))
        return view, str(meta.get("resourceVersion") or "")

    def deployment_replicas(self, namespace: str, name: str) -> int | None:
        """The replicas the strategy's Deployment asks for (None: it has none)."""
        try:
            dep = self._apps.read_namespaced_deployment(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return int(dep.spec.replicas or 0)

    def live_pods(self, namespace: str, strategy: str) -> int:
        """The strategy's pods not being deleted."""
        pods = self._core.list_namespaced_pod(namespace, label_selector=f"{manifests.LABEL_STRATEGY}={strategy}")
        return sum(1 for p in pods.items if p.metadata.deletion_timestamp is None)

    def secret_labels(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's labels (None: no such Secret; False: the operator may not read it), read
        as metadata only: its data never reaches this process."""
        import json

        try:
            resp = self._core.read_namespaced_secret(
                name,
                namespace,
                _preload_content=False,
                _headers={"Accept": "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"},
            )
        except ApiException as e:
            if e.status == 404:
                return None
            if e.status == 403:
                return False  # type: ignore[return-value] - outside rbac.secretNames: not the operator's to read
            raise
        return dict((json.loads(resp.data).get("metadata") or {}).get("labels") or {})

    def may(
        self, namespace: str, user: str, groups: list[str], resource: str, verb: str, name: str | None = None
    ) -> bool:
        """Whether USER (in GROUPS) holds VERB on RESOURCE in NAMESPACE, by the cluster's RBAC (a
        LocalSubjectAccessReview): the stratops-only verbs of stratops.admission.policies."""
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "LocalSubjectAccessReview",
            "metadata": {"namespace": namespace},
            "spec": {
                "user": user,
                "groups": groups,
                "resourceAttributes": {
                    "namespace": namespace,
                    "group": GROUP,
                    "resource": resource,
                    "verb": verb,
                    **({"name": name} if name else {}),
                },
            },
        }
        out = client.AuthorizationV1Api(self.api).create_namespaced_local_subject_access_review(namespace, review)
        return bool(out.status.allowed)

    # -- writes ------------------------------------------------------------------------------
    def ensure_configmap(self, body: dict[str, Any]) -> bool:
        """Create BODY; if a ConfigMap of that name exists but is not owned as BODY says (made in
        advance by someone else, to squat the name), take it over, emptied: what it held was
        never the pods' to begin with. True once it is the strategy's."""
        ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
        try:
            self._core.create_namespaced_config_map(ns, body)
            return True
        except ApiException as e:
            if e.status != 409:
                raise
        current = self._core.read_namespaced_config_map(name, ns)
        want = {o["uid"] for o in body["metadata"].get("ownerReferences") or []}
        if want <= {o.uid for o in current.metadata.owner_references or []}:
            return True
        log.warning("ConfigMap %s/%s existed without the strategy's ownership: taken over and emptied", ns, name)
        self._core.replace_namespaced_config_map(
            name, ns, {**body, "metadata": {**body["metadata"], "resourceVersion": current.metadata.resource_version}}
        )
        return True

    def ensure_identity(self, namespace: str, strategy: str, uid: str) -> bool:
        """The strategy pods' ServiceAccount, Role and RoleBinding, as manifests.identity says.
        One that exists but is not the strategy's, or grants something else, is deleted and made
        again: a ServiceAccount made in advance by someone else may have tokens out, and a new
        ServiceAccount (a new uid) voids every one of them."""
        ops = {
            "ServiceAccount": (
                self._core.create_namespaced_service_account,
                self._core.read_namespaced_service_account,
                self._core.delete_namespaced_service_account,
            ),
            "Role": (
                self._rbac.create_namespaced_role,
                self._rbac.read_namespaced_role,
                self._rbac.delete_namespaced_role,
            ),
            "RoleBinding": (
                self._rbac.create_namespaced_role_binding,
                self._rbac.read_namespaced_role_binding,
                self._rbac.delete_namespaced_role_binding,
            ),
        }
        for body in manifests.identity(strategy, namespace, uid):
            create, read, delete = ops[body["kind"]]
            name = body["metadata"]["name"]
            try:
                create(namespace, body)
                continue
            except ApiException as e:
                if e.status != 409:
                    raise
            current = self.api.sanitize_for_serialization(read(name, namespace))
            owned = uid in {o.get("uid") for o in current["metadata"].get("ownerReferences") or []}
            if owned and all(current.get(k) == body.get(k) for k in ("rules", "roleRef", "subjects")):
                continue
            log.warning(
                "[%s/%s] %s %s was not the strategy's as made by the operator: made again",
                namespace,
                strategy,
                body["kind"],
                name,
            )
            delete(name, namespace)
            create(namespace, body)
        self.identities.add(uid)
        return True

    def write_control(
        self,
        namespace: str,
        strategy: str,
        uid: str,
        doc: Any,
        resource_version: str | None = None,
        stored: bool = True,
    ) -> None:
        """DOC (a ControlDocument) into the strategy's control ConfigMap, remembered once written.
        With RESOURCE_VERSION ("" for: there was none), only over the ConfigMap as read then (a
        409 otherwise: someone wrote it since). Without it, whatever is stored is replaced;
        STORED False (the index shows none) creates first."""
        body = manifests.configmap(
            manifests.control_name(strategy), namespace, strategy, uid, "control", {CONTROL_KEY: doc.to_json()}
        )
        if resource_version == "":
            self._core.create_namespaced_config_map(namespace, body)
        elif resource_version is None and not stored:
            try:
                self._core.create_namespaced_config_map(namespace, body)
            except ApiException as e:
                if e.status != 409:
                    raise
                self._core.replace_namespaced_config_map(body["metadata"]["name"], namespace, body)
        else:
            if resource_version is not None:
                body["metadata"]["resourceVersion"] = resource_version
            try:
                self._core.replace_namespaced_config_map(body["metadata"]["name"], namespace, body)
            except ApiException as e:
                if e.status != 404 or resource_version is not None:
                    raise
                self._core.create_namespaced_config_map(namespace, body)
        self.written_control[(namespace, strategy)] = doc
        log.info("control document %s/%s generation %s written: %s", namespace, strategy, doc.generation, doc.to_json())

    def write_deployment(self, body: dict[str, Any], stored: bool = True) -> dict[str, Any]:
        """BODY replaces the Deployment, or creates it: first the one STORED says (the index's
        view), the other when the index lagged."""
        ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
        # The API server's answer as JSON, not as the client's models: building V1Deployment and
        # turning it back into a dict was a tenth of the operator's CPU creating a fleet (issue 21).
        raw = {"_preload_content": False}
        out = None
        if not stored:
            try:
                out = self._apps.create_namespaced_deployment(ns, body, **raw)
            except ApiException as e:
                if e.status != 409:
                    raise
        if out is None:
            try:
                out = self._apps.replace_namespaced_deployment(name, ns, body, **raw)
            except ApiException as e:
                if e.status != 404:
                    raise
                out = self._apps.create_namespaced_deployment(ns, body, **raw)
        live: dict[str, Any] = json.loads(out.data)
        drop_managed_fields(live)  # held while the index lags
        self.written_deployments[(ns, name)] = (time.monotonic(), live)
        if manifests.fingerprint(live) != body["metadata"]["annotations"][manifests.ANNOTATION_DESIRED]:
            # The projection missed an API default: drift would be reported forever. Loud.
            log.error("fingerprint of Deployment %s/%s changes on write; drift detection is unreliable", ns, name)
        return live

    def create_incident(
        self,
        namespace: str,
        strategy: str,
        uid: str,
        inc: Any,
        now: datetime,
        monitor: str | None = None,
        detected_by: str = OPERATOR,
        group: str | None = None,
    ) -> bool:
        """Create the Incident with its detection step, and its immediate-action step when the
        action was already taken (inc.detail); False if it existed. GROUP: the findings it groups
        (label stratops.io/group), MONITOR the first of them."""
        labels = {manifests.LABEL_STRATEGY: strategy, **manifests.MANAGED_BY, **({LABEL_GROUP: group} if group else {})}
        body = {
            "apiVersion": API_VERSION,
            "kind": "Incident",
            "metadata": {"name": inc.name, "namespace": namespace, "labels": labels},
            "spec": {
                "class": inc.class_.value,
                "severity": inc.severity.value,
                "strategy": strategy,
                "summary": inc.summary,
                "action": inc.action,
                **({"monitor": monitor} if monitor else {}),
                **({"requireRearm": True} if getattr(inc, "require_rearm", False) else {}),
            },
        }
        try:
            self._custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", body)
            created = True
        except ApiException as e:
            if e.status != 409:
                raise
            created = False
            existing = self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", inc.name)
            if ((existing.get("status") or {}).get("steps") or {}).get("detection"):
                # Already opened (seen by an index that lagged, or by the replica before a
                # takeover): its record stands as written; never reopened or restamped.
                return False
        steps: dict[str, Any] = {"detection": {"at": _iso(now), "by": detected_by, "detail": inc.summary}}
        if inc.detail:
            steps["immediateAction"] = {"at": _iso(now), "by": OPERATOR, "detail": inc.detail}
        status: dict[str, Any] = {"phase": "Open", "steps": steps, **({"monitors": [monitor]} if monitor else {})}
        self._custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, "incidents", inc.name, {"status": status}
        )
        return created

    def open_group_incident(self, namespace: str, strategy: str, group: str, known: str | None) -> str | None:
        """The strategy's open incident of GROUP: KNOWN if it is still open, else the newest open
        one carrying the group's label (after a restart the memory is empty); None: none."""

        def is_open(inc: dict[str, Any]) -> bool:
            return ((inc.get("status") or {}).get("phase") or "Open") != "Resolved"

        if known is not None:
            try:
                if is_open(self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", known)):
                    return known
            except ApiException as e:
                if e.status != 404:
                    raise
        found = self._custom.list_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "incidents",
            label_selector=f"{manifests.LABEL_STRATEGY}={strategy},{LABEL_GROUP}={group}",
        )["items"]
        opened = sorted((i for i in found if is_open(i)), key=lambda i: i["metadata"]["creationTimestamp"])
        return opened[-1]["metadata"]["name"] if opened else None

    def join_incident(self, namespace: str, name: str, monitor: str) -> bool:
        """MONITOR's finding joins the open incident NAME (its monitors list); False when NAME is
        gone or resolved meanwhile (the finding then opens an incident of its own)."""
        joined = False

        def change(inc: dict[str, Any]) -> dict[str, Any] | None:
            nonlocal joined
            status = inc.get("status") or {}
            if (status.get("phase") or "Open") == "Resolved":
                return None
            joined = True
            monitors = list(status.get("monitors") or [])
            return None if monitor in monitors else {"monitors": [*monitors, monitor]}

        self.update_incident_status(namespace, name, change)
        return joined

    def update_incident_status(
        self, namespace: str, name: str, change: Callable[[dict[str, Any]], dict[str, Any] | None], attempts: int = 5
    ) -> dict[str, Any] | None:
        """Read the Incident, and merge-patch its status with CHANGE(incident) at the
        resourceVersion read: a person's ack or resolve and the operator's own steps are written
        from each other's latest, never from a stale copy (a resolved incident is never put back
        to Contained or Open). CHANGE returns None to write nothing. Retried on a conflict;
        returns the incident as read (None: it does not exist)."""
        for attempt in range(attempts):
            try:
                inc = self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", name)
            except ApiException as e:
                if e.status == 404:
                    return None
                raise
            patch = change(inc)
            if patch is None:
                return inc
            try:
                self._custom.patch_namespaced_custom_object_status(
                    GROUP,
                    VERSION,
                    namespace,
                    "incidents",
                    name,
                    {"metadata": {"resourceVersion": inc["metadata"]["resourceVersion"]}, "status": patch},
                )
                return inc
            except ApiException as e:
                if e.status == 404:
                    return None
                if e.status != 409 or attempt == attempts - 1:
                    raise
        return None

    def record_incident_action(self, namespace: str, name: str, detail: str, now: datetime) -> None:
        """Record the immediate action; an incident opened by a person gets its detection step
        (when the operator first saw it) at the same time, so the four steps are complete."""

        def change(inc: dict[str, Any]) -> dict[str, Any]:
            steps: dict[str, Any] = {"immediateAction": {"at": _iso(now), "by": OPERATOR, "detail": detail}}
            status = inc.get("status") or {}
            if "detection" not in (status.get("steps") or {}):
                steps["detection"] = {
                    "at": inc["metadata"]["creationTimestamp"],
                    "by": OPERATOR,
                    "detail": f"opened by hand: {inc['spec'].get('summary', '')}",
                }
            return {"phase": status.get("phase") or "Open", "steps": steps}

        self.update_incident_status(namespace, name, change)

    def record_containment(self, namespace: str, name: str, detail: str, now: datetime) -> None:
        """The safe state was reached: the containment step, and the phase Contained (an
        incident already resolved keeps its phase)."""

        def change(inc: dict[str, Any]) -> dict[str, Any]:
            phase = (inc.get("status") or {}).get("phase")
            return {
                "phase": phase if phase == "Resolved" else "Contained",
                "steps": {"containment": {"at": _iso(now), "by": OPERATOR, "detail": detail}},
            }

        self.update_incident_status(namespace, name, change)

    def clear_incident_annotations(self, namespace: str, name: str, keys: list[str]) -> None:
        self._custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "incidents", name, {"metadata": {"annotations": dict.fromkeys(keys)}}
        )

    def write_status(self, namespace: str, name: str, status: StrategyStatus, resource_version: str) -> None:
        # A replace at the resourceVersion the decision was made from: if anyone wrote the
        # Strategy since, the API server answers 409 and the reconcile runs again on fresh data.
        body = {
            "apiVersion": API_VERSION,
            "kind": "Strategy",
            "metadata": {"name": name, "resourceVersion": resource_version},
            "status": status.to_dict(),
        }
        known = self.strategies_known.setdefault((namespace, name), KnownStrategy())
        try:
            out = self._custom.replace_namespaced_custom_object_status(
                GROUP, VERSION, namespace, "strategies", name, body
            )
        except Exception:  # refused, or its answer lost (it may have landed): read before the next write
            known.unknown()
            raise
        known.wrote(out, over=resource_version)

    def write_monitor_detail(self, namespace: str, name: str, detail: str) -> None:
        """Monitor NAME's status.detail (the others of its status untouched)."""
        self._custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, "monitors", name, {"status": {"detail": detail}}
        )

    def write_gate_status(self, namespace: str, name: str, status: Any, resource_version: str | None) -> bool:
        """Write a gate's status over the object as read (RESOURCE_VERSION): False, nothing
        written, when it changed meanwhile. The status carries the audit chain's head, decided
        from the status as read: written over a newer one, a second version of the same entries
        would be chained on (the soak found one: a signature event seen before the operator's
        own status write)."""
        body: dict[str, Any] = {"status": status.model_dump(by_alias=True, mode="json")}  # None fields: removed
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            self._custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, "gates", name, body)
        except ApiException as e:
            if e.status == 409:
                return False
            raise
        return True

    def event(
        self,
        namespace: str,
        name: str,
        uid: str,
        type_: str,
        reason: str,
        message: str,
        now: datetime,
        kind: str = "Strategy",
        entry: int | None = None,
    ) -> None:
        """An Event on the object. ENTRY: the seq of the audit entry it goes with, which names it
        (`<name>.<kind>-<seq>`), so that making it again (catch_up) never doubles it."""
        meta = {"name": f"{name}.{kind.lower()}-{entry}"} if entry is not None else {"generateName": f"{name}."}
        body = {
            "metadata": {**meta, "namespace": namespace},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": kind,
                "name": name,
                "namespace": namespace,
                "uid": uid,
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": _iso(now),
            "lastTimestamp": _iso(now),
            "count": 1,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
        }
        try:
            self._core.create_namespaced_event(namespace, body)
        except ApiException as e:  # events are best effort: never fail an action for one
            if e.status == 409 and entry is not None:
                return  # made already (before a takeover, or before a lost response)
            if namespace_terminating(e):
                log.info("event %s for %s/%s not recorded: the namespace is being deleted", reason, namespace, name)
            else:
                log.warning("event %s for %s/%s not recorded: %s", reason, namespace, name, e.reason)

    def catch_up(self, namespace: str, name: str, uid: str, head: dict[str, Any] | None) -> None:
        """The aftermath of a Strategy's last decision, when its status (HEAD: `status.audit`)
        holds lines this process does not know to be in the trail: the lines appended, and their
        Events made (each named by its entry: never twice). A decision whose status write landed
        while its response was lost (a connection cut), or whose replica died right after it,
        left both undone; the next decision would chain on after lines the trail never got (the
        long soak with the real node found the gap, and a latch without its KillSwitch Event)."""
        pending = (head or {}).get("pending")
        if not pending or int((head or {}).get("seq") or 0) <= self.audit.confirmed(namespace, "Strategy", name):
            return
        self.audit.append(namespace, "Strategy", name, pending)
        for line in pending:
            try:
                e = json.loads(line)
                at = datetime.fromisoformat(str(e["at"]).replace("Z", "+00:00"))
                self.event(namespace, name, uid, e["type"], e["reason"], e["message"], at, entry=int(e["seq"]))
            except (ValueError, KeyError, TypeError):
                continue  # not an entry this operator wrote: the trail's verifier reports it

    def clear_annotations(self, namespace: str, name: str, keys: list[str]) -> None:
        patch = {"metadata": {"annotations": dict.fromkeys(keys)}}
        known = self.strategies_known.setdefault((namespace, name), KnownStrategy())
        try:
            out = self._custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "strategies", name, patch)
        except Exception:
            known.unknown()
            raise
        known.wrote(out, over=known.written)

    def execute_halt(
        self, namespace: str, name: str, uid: str, resource_version: str, halt: Any, now: datetime
    ) -> None:
        """The halt of stratops.lifecycle.halt: HALTED, the Deployment at 0, the latch and the
        error in status; in that order, so the kill lands first."""
        if halt.control is not None:
            self.write_control(namespace, name, uid, halt.control)
        if halt.scale_to_zero:
            self.scale_to_zero(namespace, name)
        self.write_halt_status(namespace, name, resource_version, halt.status)

    def scale_to_zero(self, namespace: str, name: str) -> None:
        """The strategy's Deployment at 0 replicas, its fingerprint with it (not drift)."""
        try:
            dep = self.api.sanitize_for_serialization(self._apps.read_namespaced_deployment(name, namespace))
        except ApiException as e:
            if e.status != 404:
                raise
            dep = None
        if dep is not None and (dep.get("spec") or {}).get("replicas"):
            dep["spec"]["replicas"] = 0
            # The new fingerprint goes with it: the full decision must not take this for drift.
            dep["metadata"].setdefault("annotations", {})[manifests.ANNOTATION_DESIRED] = manifests.fingerprint(dep)
            self._apps.replace_namespaced_deployment(name, namespace, dep)

    def write_halt_status(self, namespace: str, name: str, resource_version: str, status: dict[str, Any]) -> None:
        body = {
            "apiVersion": API_VERSION,
            "kind": "Strategy",
            "metadata": {"name": name, "resourceVersion": resource_version},
            "status": status,
        }
        if (known := self.strategies_known.get((namespace, name))) is not None:
            known.caught_up()  # the kill path's write (its own thread): read before the next
        self._custom.replace_namespaced_custom_object_status(GROUP, VERSION, namespace, "strategies", name, body)

    def _optional(self, what: str, namespace: str, strategy: str, fn: Any, *args: Any) -> Any:
        """FN(*ARGS), for a write the kill path must not depend on: a failure is counted and
        logged (naming the strategy and the object), never raised; a conflict-free retry is the
        next reconcile's."""
        try:
            return fn(*args)
        except Exception as e:  # reported, counted; the halt goes on without it
            if isinstance(e, ApiException) and namespace_terminating(e):
                return None
            from stratops import metrics as M

            M.OPTIONAL_WRITE_FAILURES.labels(namespace, what.split(" ")[0]).inc()
            log.error(
                "[%s/%s] %s not written (%s): the decision goes on without it",
                namespace,
                strategy,
                what,
                f"{e.status} {e.reason}" if isinstance(e, ApiException) else e,
            )
            return None

    # -- the plan ------------------------------------------------------------------------------
    def execute(
        self,
        namespace: str,
        name: str,
        uid: str,
        resource_version: str,
        plan: Plan,
        now: datetime,
        stored: Stored,
    ) -> list[str]:
        """Carry out PLAN; returns the names of incidents created."""
        if uid not in self.identities or plan.deployment is not None:
            # Before the pods that run as it; once per process and on each Deployment write (a
            # kill's too, best effort: without it the pods cannot acknowledge, and the deadline
            # scales them to 0 all the same).
            self._optional("the strategy's ServiceAccount", namespace, name, self.ensure_identity, namespace, name, uid)
        if not stored.ack_configmap and time.monotonic() - self.acks_ensured.get(uid, -ACK_INDEX_LAG) >= ACK_INDEX_LAG:
            ensured = self._optional(
                "the ack ConfigMap",
                namespace,
                name,
                self.ensure_configmap,
                manifests.configmap(manifests.ack_name(name), namespace, name, uid, "ack", {}),
            )
            if ensured:
                self.acks_ensured[uid] = time.monotonic()
        if plan.control is not None:
            self.write_control(namespace, name, uid, plan.control, stored=stored.control_configmap)
        if plan.deployment is not None:
            self.write_deployment(plan.deployment, stored=stored.deployment)
        for pod in plan.delete_pods:
            try:
                self._core.delete_namespaced_pod(pod, namespace, grace_period_seconds=0)
                log.warning(
                    "deleted pod %s/%s: not run by strategy %s's Deployment, and the strategy is halted",
                    namespace,
                    pod,
                    name,
                )
            except ApiException as e:
                if e.status != 404:
                    raise
        created = []
        # Records of what was done, not the doing: a failure here never keeps the latch out of
        # status (counted, logged, and the next pass tries again where the decision still asks).
        for inc in plan.incidents:
            if self._optional(
                f"incident {inc.name}", namespace, name, self.create_incident, namespace, name, uid, inc, now
            ):
                created.append(inc.name)
        for inc_name, detail in plan.incident_actions:
            self._optional(
                f"incident {inc_name}", namespace, name, self.record_incident_action, namespace, inc_name, detail, now
            )
        for inc_name, detail in plan.incident_containment:
            self._optional(
                f"incident {inc_name}", namespace, name, self.record_containment, namespace, inc_name, detail, now
            )
        lines: list[str] = []
        pending: list[str] = []  # LINES, and earlier ones the trail is not known to hold
        if plan.events:
            # The chain's new head and this decision's lines go into the status write itself
            # (the operator's alone): the trail is appended after it, best effort, and a failure
            # there or a crash in between loses nothing (stratops.k8s.audit).
            from stratops.audit import Head, link, still_pending, strategy_entries
            from stratops.models.audit import AuditHead

            prior = plan.status.audit
            lines, head = link(
                Head.of(prior.model_dump() if prior else None),
                strategy_entries(name, plan.events, plan.status.to_dict(), now),
            )
            # Earlier decisions' lines the trail is not known to hold stay pending with these.
            confirmed = self.audit.confirmed(namespace, "Strategy", name)
            pending = still_pending(prior.pending if prior else None, confirmed, lines)
            plan.status.audit = AuditHead(seq=head.seq, hash=head.hash, pending=pending)
        self.write_status(namespace, name, plan.status, resource_version)
        for ev, line in zip(plan.events, lines, strict=True):
            self.event(namespace, name, uid, ev.type, ev.reason, ev.message, now, entry=entry_seq(line))
        if plan.clear_annotations:
            self.clear_annotations(namespace, name, plan.clear_annotations)
        if lines:
            self.audit.append(namespace, "Strategy", name, pending)
        return created
