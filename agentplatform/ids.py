"""Identifiers generated on the request path: time-ordered UUIDv7 (RFC 9562, section 5.7), made by
``uuid-utils`` (the Rust ``uuid`` crate; the standard library has ``uuid.uuid7`` from 3.14 only).

Why not ``uuid.uuid4()``: a UUIDv7 starts with the Unix time in milliseconds, so ids made one after
the other sort next to each other. A unique B-tree on them (``AuditEvent.event_id``) grows at its
right edge like one on a sequence, instead of touching a random leaf of a large index on every
insert.

The random bits must stay unpredictable, not merely unique: clients choose their own event ids in
the batch API (idempotency keys), and the log stores an id once, so a client able to predict the
ids the server will make could store them first and have the server's events skipped as
duplicates. The crate's ids carry a 42-bit counter seeded at random each millisecond (the order
within a millisecond) and 32 fresh bits from ``rand``'s thread generator, a CSPRNG seeded by the
kernel; guessing an id means guessing those 32 bits. A forked child reseeds that generator, so it
never repeats its parent's bits.
"""

from __future__ import annotations

import os
import uuid

import uuid_utils
import uuid_utils.compat

os.register_at_fork(after_in_child=uuid_utils.reseed_rng)


def uuid7() -> uuid.UUID:
    """A UUIDv7 as the standard library's ``uuid.UUID`` (what Django's ``UUIDField`` expects)."""
    return uuid_utils.compat.uuid7()


def uuid7_str() -> str:
    """The canonical 36-character text form."""
    return str(uuid_utils.uuid7())
