"""Scheduled jobs: the registry of fixed job names, the run path, locks and periods."""
