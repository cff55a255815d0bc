"""kopf's bodies and patches without reference cycles (stratops.handlers.kopf_fixes, the eighth
fix): the object of every event is freed as soon as kopf lets it go, not at a collection of
Python's cyclic collector, which stops the whole operator. Each case counts cyclic garbage in
a fresh interpreter, with the collector off until it counts."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import gc, sys
    from kopf._cogs.structs import bodies, patches
    if sys.argv[1] == "fixed":
        from stratops.handlers import kopf_fixes
        assert kopf_fixes._apply_views_without_cycles()
    # As kopf's mutating webhooks use it (jsonpatch's diff makes cycles of its own: not counted).
    patch = patches.Patch(body=bodies.Body({"spec": {"x": 1}}))
    patch.spec["x"] = 2
    assert patch.as_json_patch() == [{"op": "replace", "path": "/spec/x", "value": 2}]
    del patch
    gc.collect()
    gc.disable()
    for i in range(100):
        raw = {"metadata": {"name": f"m{i}", "labels": {"a": "b"}}, "spec": {"x": i}, "status": {"y": i}}
        body = bodies.Body(raw)
        assert body.meta.name == f"m{i}" and body.metadata.labels["a"] == "b" and body.spec["x"] == i
        assert body.status["y"] == i and dict(body.meta.annotations) == {}
        patch = patches.Patch(body=body)
        patch.meta.labels["c"] = "d"
        patch.metadata.annotations["e"] = "f"
        patch.status["z"] = 1
        patch.spec["x"] = i + 1
        meta = {"labels": {"c": "d"}, "annotations": {"e": "f"}}
        assert patch == {"metadata": meta, "status": {"z": 1}, "spec": {"x": i + 1}}
        copied = patches.Patch(patch)
        assert copied == patch and copied.meta.labels["c"] == "d"
        del raw, body, patch, copied, meta
    print(gc.collect())
    """
)


def _cyclic_garbage(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def test_bodies_and_patches_are_freed_without_the_cyclic_collector():
    assert _cyclic_garbage("fixed") == 0


def test_without_the_fix_each_body_and_patch_is_cyclic_garbage():
    assert _cyclic_garbage("kopf") >= 100 * 8


def test_a_body_replaced_in_place_is_seen_through_its_views():
    """What kopf's daemons rely on: a view taken before the body is replaced sees the new one."""
    from kopf._cogs.structs import bodies

    from stratops.handlers import kopf_fixes

    assert kopf_fixes._apply_views_without_cycles()
    body = bodies.Body({"metadata": {"name": "a", "labels": {"k": "1"}}, "spec": {"v": 1}})
    meta, spec, labels = body.meta, body.spec, body.meta.labels
    body._replace_with({"metadata": {"name": "a", "labels": {"k": "2"}}, "spec": {"v": 2}})
    assert meta.name == "a" and spec["v"] == 2 and labels["k"] == "2"
