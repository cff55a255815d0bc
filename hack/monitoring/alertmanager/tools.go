//go:build tools

// Package tools pins Alertmanager for the tests (hack/build-monitoring.sh builds it). Its own
// module: Prometheus's requirements would raise Alertmanager's dependencies past what it builds
// with. v0.31.1, the newest whose module carries its web UI (later ones embed a UI build the
// module leaves out).
package tools

import _ "github.com/prometheus/alertmanager/cmd/alertmanager"
