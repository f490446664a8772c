"""Models of the enrichment app (they arrive with its issue)."""
