#!/usr/bin/env bash
# Prints the directory holding the prometheus-operator CRDs (ServiceMonitor, PrometheusRule, ...)
# of a pinned release, fetched as a Go module through the module proxy (no registry needed).
# The chart tests install them to have the API server validate the chart's ServiceMonitor and
# PrometheusRule against their real schemas.
set -euo pipefail
version=v0.85.0
dir=$(cd / && GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" \
  go mod download -json "github.com/prometheus-operator/prometheus-operator@$version" \
  | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -d "$dir/example/prometheus-operator-crd" ] || { echo "prometheus-operator $version not downloaded" >&2; exit 1; }
echo "$dir/example/prometheus-operator-crd"
