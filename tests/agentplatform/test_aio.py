import asyncio
import threading

import pytest

from agentplatform.aio import close_thread_loop, run_async
from agentplatform.request_id import get_request_id, reset_request_id, set_request_id


async def _loop_and_value(value):
    await asyncio.sleep(0)
    return asyncio.get_running_loop(), value


def test_run_async_returns_the_coroutines_result():
    assert run_async(_loop_and_value(41))[1] == 41


def test_run_async_reuses_one_loop_per_thread():
    first, _ = run_async(_loop_and_value(1))
    second, _ = run_async(_loop_and_value(2))
    assert first is second
    assert not first.is_closed()


def test_each_thread_gets_its_own_loop():
    main_loop, _ = run_async(_loop_and_value(1))
    other = []
    thread = threading.Thread(target=lambda: other.append(run_async(_loop_and_value(2))[0]))
    thread.start()
    thread.join()
    assert other[0] is not main_loop


def test_run_async_propagates_exceptions():
    async def boom():
        raise LookupError("missing")

    with pytest.raises(LookupError, match="missing"):
        run_async(boom())


def test_the_coroutine_sees_the_callers_request_id():
    async def read():
        return get_request_id()

    token = set_request_id("task-trace-7")
    try:
        assert run_async(read()) == "task-trace-7"
    finally:
        reset_request_id(token)


def test_tasks_left_running_are_cancelled_not_carried_into_the_next_call():
    started = []

    async def forgotten():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            started.append("cancelled")
            raise

    async def leaves_a_task_behind():
        leftover = asyncio.ensure_future(forgotten())  # deliberately never awaited
        assert not leftover.done()
        await asyncio.sleep(0)

    run_async(leaves_a_task_behind())
    assert started == ["cancelled"]
    loop, _ = run_async(_loop_and_value(0))
    assert not [task for task in asyncio.all_tasks(loop) if not task.done()]


def test_calling_from_inside_a_running_loop_is_refused():
    async def nested():
        run_async(_loop_and_value(0))

    with pytest.raises(RuntimeError, match="inside a running event loop"):
        asyncio.run(nested())


def test_close_thread_loop_closes_and_a_new_one_is_made_on_demand():
    loop, _ = run_async(_loop_and_value(0))
    close_thread_loop()
    assert loop.is_closed()
    new_loop, _ = run_async(_loop_and_value(0))
    assert new_loop is not loop
