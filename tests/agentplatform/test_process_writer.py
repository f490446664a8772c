"""ProcessWriter: one writer per process, built on first use, drained at exit, rebuilt in a fork."""

from __future__ import annotations

import os

import pytest

from agentplatform.background import BatchWriter, ProcessWriter


class RecordingWriter(BatchWriter[int]):
    """Stores batches in its own list: this tests the holder, not a storage."""

    def __init__(self, **kwargs):
        super().__init__(max_items=100, flush_interval=60, retry_max_seconds=1, threaded=False, **kwargs)
        self.stored: list[int] = []

    def write_batch(self, batch, *, retrying):
        self.stored.extend(batch)


@pytest.fixture
def holder():
    built: list[RecordingWriter] = []

    def build():
        built.append(RecordingWriter())
        return built[-1]

    process_writer = ProcessWriter(build, drain_seconds=lambda: 1.0)
    process_writer.built = built
    return process_writer


def test_nothing_is_built_until_used_and_then_once(holder):
    assert holder.current() is None and holder.depth() == 0 and holder.flush() == 0 and holder.stop() == 0
    assert holder.get() is holder.get()
    assert len(holder.built) == 1


def test_flush_reports_what_was_waiting_and_stores_it(holder):
    holder.get().submit([1, 2, 3])
    assert holder.depth() == 3
    assert holder.flush() == 3
    assert holder.built[0].stored == [1, 2, 3] and holder.depth() == 0


def test_discard_forgets_and_stop_drains_then_a_new_writer_is_built(holder):
    holder.get().submit([1])
    holder.discard()
    assert holder.depth() == 0
    holder.get().submit([2])
    assert holder.stop() == 0
    assert holder.built[0].stored == [2] and holder.current() is None
    assert holder.get() is not holder.built[0] and len(holder.built) == 2


def test_a_forked_child_builds_its_own_writer(holder):
    parent_writer = holder.get()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its holder must not hand out the parent's writer
        try:
            child_current = holder.current()
            child_writer = holder.get()
            os.write(write, b"ok" if child_current is None and child_writer is not parent_writer else b"no")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 2)
    os.waitpid(pid, 0)
    assert answer == b"ok"
    assert holder.get() is parent_writer
