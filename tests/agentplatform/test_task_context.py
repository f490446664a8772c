import logging
import queue
import uuid

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker

from agentplatform.request_id import get_request_id, reset_request_id, set_request_id

logger = logging.getLogger("tests.task_context")


@pytest.fixture(scope="module", params=["memory", "redis"])
def worker_app(request):
    """A Celery app with a task reporting the request id it sees, served by a real in-thread worker.

    The Redis broker is a private redis-server: the suite flushes its own Redis database between
    tests, which would drop a live broker's queue bindings.
    """
    broker = request.getfixturevalue("private_redis") if request.param == "redis" else "memory://"
    app = Celery("xcut-tests", broker=broker, set_as_current=False)
    app.conf.update(
        task_default_queue="xcut-request-id-tests",
        worker_hijack_root_logger=False,
        broker_transport_options={"polling_interval": 0.05},
    )
    seen: queue.Queue = queue.Queue()

    # A name per app: Celery keeps task names process-wide.
    @app.task(name=f"tests.report_request_id.{uuid.uuid4().hex}")
    def report_request_id(label):
        logger.info("task %s running", label)
        seen.put((label, get_request_id()))

    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=10):
        yield report_request_id, seen


def _publish_in_request(task, request_id, label):
    token = set_request_id(request_id)
    try:
        task.delay(label)
    finally:
        reset_request_id(token)


def test_task_sees_the_request_id_of_the_request_that_enqueued_it(worker_app, caplog):
    task, seen = worker_app
    with caplog.at_level(logging.INFO, logger="tests.task_context"):
        _publish_in_request(task, "req-in-worker-1", "first")
        label, request_id = seen.get(timeout=20)
    assert (label, request_id) == ("first", "req-in-worker-1")
    records = [record for record in caplog.records if record.getMessage() == "task first running"]
    assert records and records[0].request_id == "req-in-worker-1"


def test_a_task_published_outside_a_request_runs_under_its_task_id_not_the_last_one(worker_app):
    task, seen = worker_app
    _publish_in_request(task, "req-a", "a")
    assert seen.get(timeout=20) == ("a", "req-a")
    published = task.delay("b")  # outside any request
    assert seen.get(timeout=20) == ("b", published.id)  # correlated by its own task id


def test_a_forged_header_is_not_trusted(worker_app):
    task, seen = worker_app
    task.apply_async(("forged",), headers={"request_id": "bad\r\nInjected: yes"})
    label, request_id = seen.get(timeout=20)
    assert label == "forged"
    assert "\n" not in request_id and len(request_id) == 36


def test_eager_tasks_keep_the_callers_id(worker_app):
    task, seen = worker_app
    token = set_request_id("req-eager")
    try:
        task.apply(("eager",))
        assert get_request_id() == "req-eager"
    finally:
        reset_request_id(token)
    assert seen.get(timeout=5) == ("eager", "req-eager")
