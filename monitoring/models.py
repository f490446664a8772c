"""Models of the monitoring app (they arrive with its issue)."""
