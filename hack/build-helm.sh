#!/usr/bin/env bash
# Builds helm from its Go module (pinned) into the stratops cache and prints its path; does
# nothing when it is there. No registry or release download is needed: only the Go module proxy.
#   usage: hack/build-helm.sh
set -euo pipefail
version=v3.21.4
cache="${STRATOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stratops}"
out="$cache/helm-$version"
if [ ! -x "$out/helm" ]; then
  command -v go >/dev/null || { echo "go is required to build helm" >&2; exit 1; }
  echo ">> building helm $version from helm.sh/helm/v3 (about two minutes on two cores)" >&2
  mkdir -p "$out"
  CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" GOBIN="$out" \
    go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$version" \
    "helm.sh/helm/v3/cmd/helm@$version"
fi
echo "$out/helm"
