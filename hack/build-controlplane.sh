#!/usr/bin/env bash
# Build the local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kwok) and the real node's kubelet and sandbox process (pause) from the pinned Go module in
# hack/controlplane into a cache directory keyed by the module's content. Does nothing when
# every binary is already there.
#   usage: hack/build-controlplane.sh [OUT_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mod="$here/controlplane"
key=$(cat "$mod/go.mod" "$mod/go.sum" "$mod/pause/main.go" | sha256sum | cut -c1-12)
cache="${STRATOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stratops}"
out="${1:-$cache/controlplane-$key}"
# Two runs on one machine build one at a time: each would otherwise replace the other's result.
mkdir -p "$(dirname "$out")" && exec 9>"$out.lock" && flock 9
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok kubelet pause)
missing=0
for b in "${bins[@]}"; do [ -x "$out/$b" ] || missing=1; done
if [ "$missing" = 0 ]; then echo "$out"; exit 0; fi
command -v go >/dev/null || { echo "go is required to build the control plane (or set KUBEBUILDER_ASSETS)" >&2; exit 1; }
mkdir -p "$out.tmp"
cd "$mod"
export GOFLAGS="${GOFLAGS:-} -mod=mod" CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
declare -A pkg=(
  [etcd]=go.etcd.io/etcd/server/v3
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kwok]=sigs.k8s.io/kwok/cmd/kwok
  [kubelet]=k8s.io/kubernetes/cmd/kubelet
  [pause]=./pause
)
for b in "${bins[@]}"; do
  [ -x "$out/$b" ] && { cp "$out/$b" "$out.tmp/$b"; continue; }
  echo ">> building $b (${pkg[$b]}); the first build takes several minutes" >&2
  start=$SECONDS
  go build -trimpath -ldflags "-s -w" -o "$out.tmp/$b" "${pkg[$b]}"
  echo ">> built $b in $((SECONDS - start))s" >&2
done
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
