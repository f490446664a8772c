"""UUIDv7 ids (agentplatform.ids): layout, time order, random bits, no repeats across forked workers."""

from __future__ import annotations

import copy
import itertools
import os
import pickle
import time
import uuid

import pytest

from agentplatform.ids import uuid7, uuid7_str


def test_a_uuid7_carries_version_7_the_rfc_variant_and_the_current_millisecond():
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert before <= value.int >> 80 <= after


def test_a_uuid7_behaves_as_any_uuid_made_from_its_text():
    # uuid-utils fills a standard-library UUID in directly: nothing may tell it from one made from text.
    value = uuid7()
    assert type(value) is uuid.UUID
    twin = uuid.UUID(str(value))
    assert value == twin and hash(value) == hash(twin) and value.int == twin.int
    assert pickle.loads(pickle.dumps(value)) == value  # noqa: S301 (our own bytes)
    assert copy.deepcopy(value) == value
    assert value.is_safe is uuid.SafeUUID.unknown
    assert repr(value) == f"UUID('{value}')"
    with pytest.raises(TypeError):
        value.int = 0  # immutable, as every UUID


def test_the_text_form_is_the_canonical_one():
    text = uuid7_str()
    assert str(uuid.UUID(text)) == text
    assert uuid.UUID(text).version == 7


def test_ids_made_in_later_milliseconds_sort_after_earlier_ones():
    earlier = [uuid7() for _ in range(50)]
    time.sleep(0.002)
    later = [uuid7() for _ in range(50)]
    assert max(earlier) < min(later)
    assert max(map(str, earlier)) < min(map(str, later))  # the text form sorts the same way


def test_a_million_ids_have_no_repeat():
    assert len({uuid7_str() for _ in range(1_000_000)}) == 1_000_000


def test_a_forked_child_does_not_repeat_its_parents_sequence():
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        try:
            os.close(read_end)
            os.write(write_end, "\n".join(uuid7_str()[15:] for _ in range(100)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    parent = {uuid7_str()[15:] for _ in range(100)}  # the random part (after the time and version)
    with os.fdopen(read_end) as pipe:
        child = set(pipe.read().split("\n"))
    os.waitpid(pid, 0)
    assert len(child) == 100
    assert not parent & child


def test_consecutive_ids_differ_in_random_bits_not_only_a_counter():
    # Unpredictable, not only unique: clients choose event ids too, so a guessable server id could be
    # taken first. A counter step flips about two of the last 32 bits; fresh random bits flip half.
    made = [uuid7().int & 0xFFFF_FFFF for _ in range(2_000)]
    flipped = [(a ^ b).bit_count() for a, b in itertools.pairwise(made)]
    assert sum(flipped) / len(flipped) > 12
