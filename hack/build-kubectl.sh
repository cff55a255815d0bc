#!/usr/bin/env bash
# Builds kubectl, at the local control plane's Kubernetes version, from the pinned Go module in
# hack/kubectl into the stratops cache, and prints its path; does nothing when it is there.
# The tests run the kubectl commands the README and the examples document with it, and the
# demo's second shell (make shell) has it on PATH.
#   usage: hack/build-kubectl.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mod="$here/kubectl"
version=v1.36.3
key=$(cat "$mod/go.mod" "$mod/go.sum" | sha256sum | cut -c1-12)
cache="${STRATOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stratops}"
out="$cache/kubectl-$key"
# Two runs on one machine build one at a time: each would otherwise replace the other's result.
mkdir -p "$(dirname "$out")" && exec 9>"$out.lock" && flock 9
if [ ! -x "$out/kubectl" ]; then
  command -v go >/dev/null || { echo "go is required to build kubectl" >&2; exit 1; }
  echo ">> building kubectl $version from k8s.io/kubernetes/cmd/kubectl (about three minutes on two cores)" >&2
  start=$SECONDS
  mkdir -p "$out.tmp"
  (cd "$mod" && CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" GOFLAGS="${GOFLAGS:-} -mod=mod" \
    go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$version" \
    -o "$out.tmp/kubectl" k8s.io/kubernetes/cmd/kubectl)
  rm -rf "$out" && mv "$out.tmp" "$out"
  echo ">> built kubectl in $((SECONDS - start))s" >&2
fi
echo "$out/kubectl"
