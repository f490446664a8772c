"""Models of the experiments app (they arrive with its issue)."""
