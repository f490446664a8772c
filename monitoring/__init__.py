"""Monitoring: mergeable latency percentiles, agent workflow metrics, system health, /metrics."""

from monitoring.tracking import track

__all__ = ["track"]
