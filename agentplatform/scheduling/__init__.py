"""Scheduled jobs: the registry every app's ``jobs.py`` declares into, the run path, locks, periods,
the Celery tasks, default schedules and their audited changes."""
