"""Namespace slices: mutually exclusive experiments on one prompt type.

Every prompt type is a GrowthBook namespace, the interval [0, 1). A live (running or paused)
experiment owns ``[start, start + user_percentage / 100)`` of it; slices never overlap, so a user
is in at most one experiment per prompt type. Slices are exact decimals (six places) so that
adjacent slices meet without floating-point gaps.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

ONE = Decimal(1)
QUANTUM = Decimal("0.000001")


@dataclass(frozen=True)
class Slice:
    start: Decimal
    end: Decimal
    owner: str = ""  # experiment key, empty for free space

    @property
    def width(self) -> Decimal:
        return self.end - self.start

    def __str__(self) -> str:
        return f"[{self.start.normalize():f}, {self.end.normalize():f})"


def width_of(user_percentage: Decimal) -> Decimal:
    return (Decimal(user_percentage) / 100).quantize(QUANTUM)


def free_slices(taken: list[Slice]) -> list[Slice]:
    """The gaps of [0, 1) not covered by ``taken``, in order."""
    gaps: list[Slice] = []
    cursor = Decimal(0)
    for occupied in sorted(taken, key=lambda s: s.start):
        if occupied.start > cursor:
            gaps.append(Slice(cursor, occupied.start))
        cursor = max(cursor, occupied.end)
    if cursor < ONE:
        gaps.append(Slice(cursor, ONE))
    return gaps


def first_fit(taken: list[Slice], width: Decimal) -> Slice | None:
    """The lowest free slice of ``width``, or None when no gap is wide enough."""
    for gap in free_slices(taken):
        if gap.width >= width:
            return Slice(gap.start, gap.start + width)
    return None


def describe_free_space(taken: list[Slice]) -> str:
    gaps = free_slices(taken)
    if not gaps:
        return "none (the namespace is full)"
    total = sum((gap.width for gap in gaps), Decimal(0)) * 100
    largest = max(gap.width for gap in gaps) * 100
    return f"{total.normalize():f}% in total, at most {largest.normalize():f}% in one piece: " + ", ".join(
        str(gap) for gap in gaps
    )
