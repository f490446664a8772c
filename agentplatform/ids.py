"""Identifiers generated on the request path: time-ordered UUIDv7 (RFC 9562, section 5.7).

Why not ``uuid.uuid4()``:

- **Index locality.** A UUIDv7 starts with the Unix time in milliseconds, so ids made one after
  the other sort next to each other. A unique B-tree on them (``AuditEvent.event_id``) grows at
  its right edge like one on a sequence, instead of touching a random leaf of an index of
  100 million entries on every insert.
- **No system call.** ``uuid4()`` reads ``os.urandom``, a system call that releases the GIL; under
  load the thread then queues to get it back behind the busy request threads (py-spy showed
  ~9 % of a gthread worker's samples waiting there on the audited no-op). The 74 random bits here
  come from a Mersenne Twister seeded from ``os.urandom`` once per process (and again in every
  forked child), which never releases the GIL.

They are unique, not secret: never use them as tokens or keys (``secrets`` is for those).
"""

from __future__ import annotations

import os
import random
import time
import uuid

_random = random.Random()  # seeded from os.urandom


def _reseed() -> None:
    # A forked worker must not repeat its parent's (or a sibling's) sequence.
    _random.seed(os.urandom(32))


os.register_at_fork(after_in_child=_reseed)

_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62


def uuid7_int() -> int:
    """A UUIDv7 as its 128-bit integer: 48 bits of milliseconds, version, 74 random bits, variant."""
    rand = _random.getrandbits(74)
    return (
        (time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF) << 80
        | _VERSION_7
        | (rand >> 62) << 64  # rand_a: 12 bits
        | _VARIANT_RFC
        | rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b: 62 bits
    )


def uuid7() -> uuid.UUID:
    return uuid.UUID(int=uuid7_int())


def uuid7_str() -> str:
    """The canonical 36-character text form, without building a ``uuid.UUID``."""
    h = f"{uuid7_int():032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
