#!/usr/bin/env bash
# Build the monitoring binaries the tests run (Prometheus, promtool, Alertmanager) from the
# pinned Go modules in hack/monitoring/{prometheus,alertmanager} (two modules: Prometheus's
# requirements would raise Alertmanager's dependencies past what it builds with) into a cache
# directory keyed by the modules' content.
# Does nothing when every binary is already there. A directory of ready binaries can be given
# instead with STRATOPS_MONITORING_ASSETS (then nothing is built).
#   usage: hack/build-monitoring.sh [OUT_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mod="$here/monitoring"
key=$(cat "$mod"/prometheus/go.mod "$mod"/prometheus/go.sum "$mod"/alertmanager/go.mod "$mod"/alertmanager/go.sum | sha256sum | cut -c1-12)
cache="${STRATOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stratops}"
out="${1:-$cache/monitoring-$key}"
# Two runs on one machine build one at a time: each would otherwise replace the other's result.
mkdir -p "$(dirname "$out")" && exec 9>"$out.lock" && flock 9
bins=(prometheus promtool alertmanager)
missing=0
for b in "${bins[@]}"; do [ -x "$out/$b" ] || missing=1; done
if [ "$missing" = 0 ]; then echo "$out"; exit 0; fi
command -v go >/dev/null || { echo "go is required to build Prometheus and Alertmanager (or set STRATOPS_MONITORING_ASSETS)" >&2; exit 1; }
mkdir -p "$out.tmp"
export GOFLAGS="${GOFLAGS:-} -mod=mod" CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
declare -A module=([prometheus]=prometheus [promtool]=prometheus [alertmanager]=alertmanager)
# The tests scrape static targets only: Prometheus's own tag leaves out every service-discovery
# plugin (cloud SDKs, Kubernetes client), which is most of its build time.
declare -A tags=([prometheus]=remove_all_sd [promtool]=remove_all_sd [alertmanager]=)
declare -A pkg=(
  [prometheus]=github.com/prometheus/prometheus/cmd/prometheus
  [promtool]=github.com/prometheus/prometheus/cmd/promtool
  [alertmanager]=github.com/prometheus/alertmanager/cmd/alertmanager
)
for b in "${bins[@]}"; do
  [ -x "$out/$b" ] && { cp "$out/$b" "$out.tmp/$b"; continue; }
  echo ">> building $b (${pkg[$b]}); the first build takes a few minutes on two cores" >&2
  start=$SECONDS
  (cd "$mod/${module[$b]}" && go build -trimpath -tags "${tags[$b]}" -ldflags "-s -w" -o "$out.tmp/$b" "${pkg[$b]}")
  echo ">> built $b in $((SECONDS - start))s" >&2
done
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
