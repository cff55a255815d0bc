#!/usr/bin/env bash
# Build the Argo Rollouts controller that bench/rollouts.py runs beside stratops (issue 21's
# side-by-side), from the pinned Go module in hack/rollouts, into a cache directory keyed by
# that module's content. Does nothing when it is already there. Bench only: no test needs it.
#   usage: hack/build-rollouts.sh [OUT_DIR]    (prints the directory holding the binary and CRDs)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mod="$here/rollouts"
key=$(cat "$mod/go.mod" "$mod/go.sum" | sha256sum | cut -c1-12)
cache="${STRATOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stratops}"
out="${1:-$cache/rollouts-$key}"
mkdir -p "$(dirname "$out")" && exec 9>"$out.lock" && flock 9
if [ -x "$out/rollouts-controller" ] && [ -d "$out/crds" ]; then echo "$out"; exit 0; fi
command -v go >/dev/null || { echo "go is required to build the Argo Rollouts controller" >&2; exit 1; }
# Argo Rollouts v1.10 needs Go >= 1.26.10: the go command takes the approved toolchain from the
# Go module proxy (once, ~76 MB) when the machine's own Go is older.
export GOFLAGS="${GOFLAGS:-} -mod=mod" CGO_ENABLED=0 GOTOOLCHAIN="${STRATOPS_ROLLOUTS_TOOLCHAIN:-go1.27.3}"
rm -rf "$out.tmp" && mkdir -p "$out.tmp/crds"
echo ">> building rollouts-controller (Argo Rollouts); the first build takes several minutes on two cores" >&2
start=$SECONDS
(cd "$mod" && go build -trimpath -ldflags "-s -w" -o "$out.tmp/rollouts-controller" github.com/argoproj/argo-rollouts/cmd/rollouts-controller)
src=$(cd "$mod" && go list -m -f '{{.Dir}}' github.com/argoproj/argo-rollouts)
cp "$src"/manifests/crds/*.yaml "$out.tmp/crds/"
echo ">> built rollouts-controller in $((SECONDS - start))s" >&2
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
