#!/usr/bin/env bash
# Deletes the kind cluster of hack/kind-up.sh ($KIND_CLUSTER, default stratops) and its
# kubeconfig; in local mode, also stops the kind tier's Docker engine once no cluster is left on
# it, and checks that nothing is left behind (containers, the kind network's bridge, processes,
# mounts). Images stay: they are the cache (the node image, the operator's; `docker rmi` them
# with DOCKER_HOST=$(hack/kind/dockerd.sh host) to free the disk).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cluster=${KIND_CLUSTER:-stratops}
cache="${STRATOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stratops}"
kubeconfig=${KIND_KUBECONFIG:-$cache/kind/$cluster.kubeconfig}
run=${STRATOPS_KIND_RUN_DIR:-/run/stratops-kind}
kind=$(command -v kind || echo "$cache/kind-v0.33.0/kind")

local_engine=""
if DOCKER_HOST=$(bash "$root/hack/kind/dockerd.sh" host 2>/dev/null); then
  export DOCKER_HOST
  local_engine=1
fi
if [ -x "$kind" ] && "$kind" get clusters 2>/dev/null | grep -qx "$cluster"; then
  "$kind" delete cluster --name "$cluster" --kubeconfig "$kubeconfig"
fi
rm -rf "$kubeconfig" "$(dirname "$kubeconfig")/$cluster.kube-cache"
[ -n "$local_engine" ] || exit 0

left=$("$kind" get clusters 2>/dev/null || true)
if [ -n "$left" ]; then
  echo "kind clusters still on the kind tier's Docker engine ($(echo "$left" | paste -sd' ')): it keeps running" >&2
  exit 0
fi
made_lib_modules=""
[ ! -e "$run/lib-modules-made-by-kind" ] || made_lib_modules=1
bash "$root/hack/kind/dockerd.sh" stop
# Docker made /lib/modules for kind's mount (hack/kind-up.sh noted it): gone again, if empty.
[ -z "$made_lib_modules" ] || rmdir /lib/modules 2>/dev/null || true
echo "kind cluster $cluster deleted; the kind tier's Docker engine is stopped"
