#!/usr/bin/env bash
# The e2e suite against the kind cluster of hack/kind-up.sh (created when absent), with
# USE_EXISTING_CLUSTER=1; arguments go to pytest. By default the tests marked `kind`, those that
# run on a kind cluster (-m kind tests/e2e): most of the others play their strategies' pods with
# KWOK's fake nodes, which only the local control plane has (see the README, kind).
#   hack/kind-e2e.sh tests/e2e/test_real_pods.py -k kill_switch
#   hack/kind-e2e.sh tests/e2e           # all of it
# The suite runs its own operator process for its t-* namespaces; the chart's operator serves
# only its own namespace, so the two never act on the same objects. The example strategy's image
# is loaded under the versions the real-container tests deploy (stratops.local/mean-revert:1.4.2,
# 1.4.3, crash-1.4.4: one image, STRATOPS_VERSION decides), so they run on the kind node.
# The cluster stays up afterwards: `make kind-down` deletes it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cluster=${KIND_CLUSTER:-stratops}
cache="${STRATOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stratops}"
export KIND_KUBECONFIG=${KIND_KUBECONFIG:-$cache/kind/$cluster.kubeconfig}
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$root/operator/stratops/__init__.py")
bash "$root/hack/kind-up.sh"
if DOCKER_HOST=$(bash "$root/hack/kind/dockerd.sh" host 2>/dev/null); then export DOCKER_HOST; fi
# The versions the tests deploy, as names of the image kind-up loaded (what `kind load` does
# for an image already on the node).
for v in 1.4.2 1.4.3 crash-1.4.4; do
  docker exec "$cluster-control-plane" ctr --namespace=k8s.io images tag --force \
    "stratops.local/mean-revert:$version" "stratops.local/mean-revert:$v" >/dev/null
done
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(-m kind tests/e2e)
cd "$root"
# STRATOPS_KIND_CLUSTER: the fixtures' real node is the kind node (stratops.testing.kind).
KUBECONFIG=$KIND_KUBECONFIG USE_EXISTING_CLUSTER=1 STRATOPS_KIND_CLUSTER=$cluster \
  "${PYTHON:-.venv/bin/python}" -m pytest "${args[@]}"
