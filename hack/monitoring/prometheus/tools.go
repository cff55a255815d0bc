//go:build tools

// Package tools pins Prometheus and promtool for the tests (hack/build-monitoring.sh builds them).
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
