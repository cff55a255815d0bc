"""Monitors: sources (Prometheus HTTP API), statistics, evaluation. Pure apart from the source."""
