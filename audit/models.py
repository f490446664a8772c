"""Models of the audit app (they arrive with its issue)."""
