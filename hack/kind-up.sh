#!/usr/bin/env bash
# A kind cluster running stratops from its Helm chart:
#   1. creates the kind cluster $KIND_CLUSTER (default stratops), if absent: one node, labelled
#      stratops.io/node=real (the e2e suite's real-container tests select it);
#   2. builds the operator image (hack/build-image.sh) and the example strategy's image
#      (hack/build-strategy-image.sh), offline, and loads both with `kind load docker-image`;
#   3. installs the chart (CRDs included) into $STRATOPS_NAMESPACE (default stratops-system),
#      serving that namespace, and waits for its Deployment to be Available.
# Its kubeconfig is written to $KIND_KUBECONFIG (default ~/.cache/stratops/kind/<cluster>.kubeconfig);
# yours is left alone. `make kind-down` (hack/kind-down.sh) deletes it all.
#
# Two ways to get there (STRATOPS_KIND_NODE=local|upstream; by default local where the machine
# has root, dockerd and debootstrap, else upstream):
#   local     no registry needed: the node image is assembled here from the pinned control-plane
#             binaries (hack/build-kind-node-image.sh), the operator image's base with debootstrap
#             (hack/build-base-image.sh), and everything runs on the kind tier's own Docker engine
#             (hack/kind/dockerd.sh: its runtime drops CAP_SYS_RESOURCE, which kind's privileged
#             nodes need where processes lack it, as on the machine stratops is built on).
#   upstream  your Docker engine, kind's own node image and python:3.11-slim-bookworm (BASE_IMAGE)
#             from their registries.
# kind is built from its Go module and helm by hack/build-helm.sh when they are not on PATH.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cluster=${KIND_CLUSTER:-stratops}
namespace=${STRATOPS_NAMESPACE:-stratops-system}
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$root/operator/stratops/__init__.py")
image=stratops:$version
strategy_image=stratops.local/mean-revert:$version
cache="${STRATOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stratops}"
kubeconfig=${KIND_KUBECONFIG:-$cache/kind/$cluster.kubeconfig}
started=$SECONDS
say() { echo ">> kind-up: $* ($((SECONDS - started))s)" >&2; }

mode=${STRATOPS_KIND_NODE:-}
if [ -z "$mode" ]; then
  if [ "$(id -u)" = 0 ] && command -v dockerd >/dev/null && command -v debootstrap >/dev/null; then
    mode=local
  else
    mode=upstream
  fi
fi

kind=$(command -v kind || true)
if [ -z "$kind" ]; then
  kind="$cache/kind-v0.33.0/kind"
  if [ ! -x "$kind" ]; then
    say "building kind v0.33.0 from its Go module"
    GOBIN="$(dirname "$kind")" GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" go install sigs.k8s.io/kind@v0.33.0
  fi
fi
helm=$(command -v helm || bash "$root/hack/build-helm.sh")

config=$(mktemp)
trap 'rm -f "$config"' EXIT
# The kubelet runs on cgroup v1 hosts too (Kubernetes 1.35+ refuses them unless told).
cat >"$config" <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  labels:
    stratops.io/node: real
kubeadmConfigPatches:
- |
  kind: KubeletConfiguration
  failCgroupV1: false
EOF
case "$mode" in
  local)
    say "local mode: node image assembled here, the kind tier's Docker engine"
    DOCKER_HOST=$(bash "$root/hack/kind/dockerd.sh" start)
    export DOCKER_HOST
    node_image=$(bash "$root/hack/build-kind-node-image.sh")
    base=stratops-base:bookworm
    bash "$root/hack/build-base-image.sh" "$base" >/dev/null
    # kindnetd is an image from a registry: the node image carries a bridge CNI configuration
    # instead (one node).
    printf 'networking:\n  disableDefaultCNI: true\n' >>"$config"
    ;;
  upstream)
    say "upstream mode: your Docker engine, kind's node image from its registry"
    docker info >/dev/null 2>&1 || { echo "kind needs a running Docker engine" >&2; exit 1; }
    node_image=""
    base=${BASE_IMAGE:-python:3.11-slim-bookworm}
    ;;
  *)
    echo "STRATOPS_KIND_NODE=$mode: say local or upstream" >&2
    exit 1
    ;;
esac

mkdir -p "$(dirname "$kubeconfig")"
if ! "$kind" get clusters 2>/dev/null | grep -qx "$cluster"; then
  # kind mounts the host's /lib/modules into its nodes, and Docker makes it where it is absent:
  # remembered, so that `make kind-down` removes it again.
  if [ "$mode" = local ] && [ ! -e /lib/modules ]; then
    touch "${STRATOPS_KIND_RUN_DIR:-/run/stratops-kind}/lib-modules-made-by-kind"
  fi
  say "creating kind cluster $cluster${node_image:+ from $node_image}"
  "$kind" create cluster --name "$cluster" --kubeconfig "$kubeconfig" --config "$config" \
    ${node_image:+--image "$node_image"} --wait 180s
else
  "$kind" export kubeconfig --name "$cluster" --kubeconfig "$kubeconfig" >/dev/null 2>&1
fi

python=${PYTHON:-$root/.venv/bin/python}
log="$(dirname "$kubeconfig")/$cluster.build.log"
quietly() { "$@" >"$log" 2>&1 || { tail -n 30 "$log" >&2; echo "failed: $* (log: $log)" >&2; exit 1; }; }
# The operator image carries the hash of its sources and base (stratops.testing.images): an
# unchanged tree is not built again.
base_id=$(docker image inspect --format '{{.Id}}' "$base" 2>/dev/null || true)
source=$("$python" -c 'import sys; from pathlib import Path; from stratops.testing.images import source_hash
print(source_hash(Path(sys.argv[1]), sys.argv[2]))' "$root" "$base_id")
built=$(docker image inspect --format '{{ index .Config.Labels "io.stratops.source" }}' "$image" 2>/dev/null || true)
if [ -z "$base_id" ] || [ "$built" != "$source" ]; then
  say "building the operator image $image on $base (about a minute)"
  quietly env BASE_IMAGE="$base" SOURCE_LABEL="$source" PYTHON="$python" bash "$root/hack/build-image.sh" "$image"
fi
say "building the strategy image $strategy_image"
quietly bash "$root/hack/build-strategy-image.sh" "$strategy_image" "$image"
say "loading them into the cluster's node"
"$kind" load docker-image "$image" "$strategy_image" --name "$cluster"
# Earlier builds of the two, now untagged, are of no further use on the kind tier's own engine.
[ "$mode" = upstream ] || docker image prune -f >/dev/null

say "installing the CRDs and the chart into $namespace"
# CRDs: `helm upgrade` never updates a chart's crds/, so apply them first (server-side).
"$python" -c 'import sys; from pathlib import Path
from stratops.k8s.apply import install_crds; from stratops.k8s.client import api_client
install_crds(api_client(sys.argv[1]), Path(sys.argv[2]))' "$kubeconfig" "$root/charts/stratops/crds"
# pullPolicy Never: the image was loaded into the node, there is no registry to pull it from.
# KUBECACHEDIR: helm's discovery cache next to the kubeconfig (not ~/.kube), gone with the cluster.
KUBECONFIG=$kubeconfig KUBECACHEDIR="$(dirname "$kubeconfig")/$cluster.kube-cache" \
  "$helm" upgrade --install stratops "$root/charts/stratops" \
  --namespace "$namespace" --create-namespace \
  --set image.repository=stratops --set image.tag="$version" --set image.pullPolicy=Never \
  --wait --timeout 5m >/dev/null
say "done"
echo "stratops is running in kind cluster $cluster ($mode), namespace $namespace:"
[ "$mode" = local ] && echo "  export DOCKER_HOST=$DOCKER_HOST   # the kind tier's Docker engine (kind, docker ps)"
echo "  export KUBECONFIG=$kubeconfig"
