"""Identifiers generated on the request path: time-ordered UUIDv7 (RFC 9562, section 5.7).

Why not ``uuid.uuid4()``:

- **Index locality.** A UUIDv7 starts with the Unix time in milliseconds, so ids made one after
  the other sort next to each other. A unique B-tree on them (``AuditEvent.event_id``) grows at
  its right edge like one on a sequence, instead of touching a random leaf of an index of
  100 million entries on every insert.
- **One system call per ~1,600 ids, not per id.** ``uuid4()`` reads ``os.urandom`` every time, a
  system call that releases the GIL; under load the thread then queues to get it back behind the
  busy request threads. Here the 74 random bits of an id are cut from a 16 KiB block read from
  ``os.urandom`` at once.

The random bits must stay unpredictable, not merely unique: clients choose their own event ids in
the batch API (idempotency keys), and the log stores an id once, so a client able to predict the
ids the server will make could store them first and have the server's events skipped as
duplicates. That is why the source is the kernel's CSPRNG and not ``random`` (a Mersenne Twister,
whose state can be recovered from a few hundred outputs, and request ids are shown to every
caller). A forked child throws away the block it inherited, so it never repeats its parent's bits.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_BLOCK_BYTES = 16_384
_ID_BYTES = 10  # 80 bits read, 74 used

_lock = threading.Lock()
_block = b""
_offset = 0


def _forget_block() -> None:
    global _block, _offset, _lock
    _block, _offset = b"", 0
    _lock = threading.Lock()  # another thread may have held it at the fork


os.register_at_fork(after_in_child=_forget_block)


def _random_74() -> int:
    global _block, _offset
    with _lock:
        start = _offset
        if start + _ID_BYTES > len(_block):
            _block, start = os.urandom(_BLOCK_BYTES), 0
        _offset = start + _ID_BYTES
        chunk = _block[start : start + _ID_BYTES]
    return int.from_bytes(chunk, "big") >> 6


_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62


def uuid7_int() -> int:
    """A UUIDv7 as its 128-bit integer: 48 bits of milliseconds, version, 74 random bits, variant."""
    rand = _random_74()
    return (
        (time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF) << 80
        | _VERSION_7
        | (rand >> 62) << 64  # rand_a: 12 bits
        | _VARIANT_RFC
        | rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b: 62 bits
    )


# uuid.UUID(int=...) re-validates its argument in Python (bench/README.md, "Figures behind the
# code"); an id made here is a valid
# 128-bit value by construction, so the object is filled in directly, as CPython 3.14's own uuid7()
# does (uuid.UUID._from_int). UUID is immutable through __setattr__, hence object.__setattr__.
_new_object = object.__new__
_set_slot = object.__setattr__
_SAFE_UNKNOWN = uuid.SafeUUID.unknown


def uuid7() -> uuid.UUID:
    value = _new_object(uuid.UUID)
    _set_slot(value, "int", uuid7_int())
    _set_slot(value, "is_safe", _SAFE_UNKNOWN)
    return value


def uuid7_str() -> str:
    """The canonical 36-character text form, without building a ``uuid.UUID``."""
    h = f"{uuid7_int():032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
