"""Who may change a Gate's signatures and items: the rules of the validating admission webhook.

A signature must be attributable to the user who made the request:
- a new or changed signature must name the requesting user as its signer;
- a signature can be removed or altered only by its own signer;
- an item's text cannot change once the item is signed (nor can a signed item be removed);
- a signature cannot be dated in the future.

GitOps: when signatures are committed in Git and applied by a controller (Argo CD, Flux), the
requesting user is the controller's identity, not the signer. Such an identity is accepted only
if it is listed as a GitOps signer (STRATOPS_GITOPS_SIGNERS): the pull request's review is then
the attribution, and the signature's `signer` names the person who signed in Git.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from stratops.models.gate import GateSpec, Signature

CLOCK_SKEW = timedelta(minutes=5)


def review(old: GateSpec | None, new: GateSpec | None, user: str, now: datetime,
           gitops_signers: Collection[str] = ()) -> list[str]:
    """Reasons to reject the change from OLD to NEW made by USER (empty: allowed)."""
    if new is None:
        return []  # deletion of the whole Gate is RBAC's business
    gitops = user in gitops_signers
    problems: list[str] = []
    before = {s.item: s for s in (old.signatures or [])} if old else {}
    after = {s.item: s for s in new.signatures or []}

    for item, sig in after.items():
        prev = before.get(item)
        if prev == sig:
            continue
        if not gitops and sig.signer != user:
            problems.append(f"spec.signatures[{item}]: signer is {sig.signer!r} but the request is made by {user!r}; "
                            f"sign as yourself (stratops gate sign), or apply through a GitOps identity allowed to sign")
        if prev is not None and not gitops and prev.signer != user:
            problems.append(f"spec.signatures[{item}]: signed by {prev.signer!r}; only they may change their signature")
        if sig.signed_at > now + CLOCK_SKEW:
            problems.append(f"spec.signatures[{item}].signedAt {sig.signed_at.isoformat()} is in the future")
    for item, prev in before.items():
        if item not in after and not gitops and prev.signer != user:
            problems.append(f"spec.signatures[{item}]: signed by {prev.signer!r}; only they may remove their signature")

    if old is not None:
        new_items = {i.id: i for i in new.items}
        for i in old.items:
            if i.id not in before:
                continue
            if i.id not in new_items:
                problems.append(f"spec.items[{i.id}] is signed; it cannot be removed while signed")
            elif new_items[i.id].text != i.text:
                problems.append(f"spec.items[{i.id}].text cannot change after the item was signed (by {before[i.id].signer})")
    return problems


def signature(item: str, user: str, evidence: str, now: datetime, subject: str | None = None) -> Signature:
    return Signature(item=item, signer=user, signed_at=now, evidence=evidence, subject=subject)


COMMAND_PREFIX = "stratops.io/"
COMMANDS = ("kill", "throttle", "rollback", "resume", "reconciliation", "failover", "rearm", "ack", "contain", "resolve")


def review_commands(old: dict[str, str] | None, new: dict[str, str] | None, user: str,
                    rearm_by: Collection[str] = (), delegates: Collection[str] = ()) -> list[str]:
    """Reasons to reject command annotations (stratops.io/kill, …) added or changed by USER: a
    command that names who gives it must name the requesting user, unless USER is a delegate
    (STRATOPS_COMMAND_DELEGATES: a ChatOps bot or risk gateway acting for the person it names);
    a re-arm must name a designated user. Removing an annotation is always allowed."""
    import json

    problems = []
    before, after = old or {}, new or {}
    for cmd in COMMANDS:
        key = COMMAND_PREFIX + cmd
        if key not in after or before.get(key) == after[key]:
            continue
        try:
            value = json.loads(after[key])
        except ValueError:
            value = None
        by = value.get("by") if isinstance(value, dict) else None
        if by is not None and by != user and user not in delegates:
            problems.append(f"metadata.annotations[{key}].by is {by!r} but the request is made by {user!r}: "
                            "commands are recorded as given by whoever gives them")
        if cmd == "rearm":
            if by is None:
                problems.append(f"metadata.annotations[{key}]: a re-arm must say who gives it: {{\"by\": \"{user}\", \"reason\": …}}")
            elif by not in rearm_by:
                problems.append(f"metadata.annotations[{key}]: {by!r} may not re-arm this strategy "
                                f"(spec.killSwitch.rearmBy: {', '.join(rearm_by) or 'nobody'})")
    return problems
