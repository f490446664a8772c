"""Running coroutines from synchronous code (Celery tasks, management commands).

``run_async(coro)`` runs on one event loop per thread, created on first use and reused by every
later call in that thread: no loop is created (and leaked, with its selector and file
descriptors) per task, and clients bound to the loop, such as an ``httpx.AsyncClient`` kept by a
provider, stay usable across tasks. The coroutine runs in a copy of the caller's context, so the
request id restored by the Celery signal handlers is visible inside it.

Code inside the coroutine must not call the ORM synchronously (Django refuses it inside a running
loop); wrap database work in ``asgiref.sync.sync_to_async``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_local = threading.local()
_loops: list[asyncio.AbstractEventLoop] = []
_loops_lock = threading.Lock()


def _thread_loop() -> asyncio.AbstractEventLoop:
    loop = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _local.loop = loop
        with _loops_lock:
            _loops.append(loop)
    return loop


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel tasks the coroutine started but did not await: they must not run into the next call."""
    leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not leftovers:
        return
    for task in leftovers:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from synchronous code and return its result (or raise its error)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coro.close()  # never awaited otherwise, which would warn later and far from here
        raise RuntimeError("run_async() was called inside a running event loop; await the coroutine instead.")
    loop = _thread_loop()
    task = loop.create_task(coro, context=contextvars.copy_context())
    try:
        return loop.run_until_complete(task)
    finally:
        # A Celery time limit raises out of run_until_complete while the task is still pending:
        # cancel it (running its cleanup, e.g. closing connections) before the loop is reused.
        if not task.done():
            task.cancel()
            loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
        _cancel_leftovers(loop)


def close_thread_loop() -> None:
    """Close this thread's loop (worker shutdown, tests); the next ``run_async`` makes a new one."""
    loop = getattr(_local, "loop", None)
    if loop is not None and not loop.is_closed():
        _cancel_leftovers(loop)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    _local.loop = None


@atexit.register
def _close_all_loops() -> None:
    with _loops_lock:
        for loop in _loops:
            if not loop.is_closed() and not loop.is_running():
                loop.close()
        _loops.clear()
