"""The project package (the design card's ``platform``; renamed because a top-level package named
``platform`` shadows the standard library module that httpx and celery import)."""

from agentplatform.celery import app as celery_app

__all__ = ("celery_app",)
