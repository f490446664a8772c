"""Request ids across Celery: the publishing request's id travels in the message headers and is
restored in the worker for the task's duration (logs, audit rows, outbound calls all see it).

Connected from ``AgentPlatformConfig.ready`` so every Django process (web publishing, worker
consuming) has the handlers. A task published outside any request (beat, a shell) runs with its
own task id as request id, so its log lines and rows can be told apart and found by task id.
"""

from __future__ import annotations

from celery.signals import before_task_publish, task_postrun, task_prerun

from agentplatform.request_id import accept_or_generate, get_request_id, reset_request_id, set_request_id

HEADER = "request_id"
_CONTEXT_RESET_ATTRIBUTE = "_agentplatform_request_id_token"


@before_task_publish.connect(dispatch_uid="agentplatform.request_id.publish")
def _publish_request_id(sender=None, headers=None, **kwargs) -> None:
    request_id = get_request_id()
    if request_id and headers is not None and not headers.get(HEADER):
        headers[HEADER] = request_id


@task_prerun.connect(dispatch_uid="agentplatform.request_id.prerun")
def _restore_request_id(sender=None, task=None, **kwargs) -> None:
    if task is None:
        return
    request = task.request
    if request.is_eager:
        # Run inline by the caller (CELERY_TASK_ALWAYS_EAGER, .apply()): the caller's id is current.
        value = get_request_id() or accept_or_generate(None)
    else:
        # Headers come from whoever can publish to the broker: validate like an HTTP header. A task
        # published outside any request (beat, a shell) is correlated by its own task id.
        published = getattr(request, HEADER, None) or (request.headers or {}).get(HEADER)
        value = accept_or_generate(published or request.id)
    setattr(request, _CONTEXT_RESET_ATTRIBUTE, set_request_id(value))


@task_postrun.connect(dispatch_uid="agentplatform.request_id.postrun")
def _clear_request_id(sender=None, task=None, **kwargs) -> None:
    token = getattr(task.request, _CONTEXT_RESET_ATTRIBUTE, None) if task is not None else None
    if token is None:
        return
    try:
        reset_request_id(token)
    except ValueError:  # created in another context (a pool that switches contexts): just clear
        set_request_id(None)
    setattr(task.request, _CONTEXT_RESET_ATTRIBUTE, None)
