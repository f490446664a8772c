"""Side-by-side line diffs of two prompt versions (``difflib``), for the admin's diff pages.

Rows carry plain text: the template escapes it, so markup inside a prompt is shown, never rendered.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class DiffRow:
    """One line pair: ``kind`` is ``equal``, ``replace``, ``delete`` (left only) or ``insert`` (right only)."""

    kind: str
    left_number: int | None
    left: str
    right_number: int | None
    right: str


@dataclass(frozen=True)
class Diff:
    rows: list[DiffRow]
    added: int
    removed: int

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


def side_by_side(old: str, new: str) -> Diff:
    """The lines of ``old`` against those of ``new``, aligned; changed blocks paired line by line."""
    left, right = old.splitlines(), new.splitlines()
    rows: list[DiffRow] = []
    added = removed = 0
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            pairs = zip(range(i1, i2), range(j1, j2), strict=True)  # equal blocks have equal lengths
            rows.extend(DiffRow("equal", i + 1, left[i], j + 1, right[j]) for i, j in pairs)
            continue
        removed += i2 - i1
        added += j2 - j1
        for offset in range(max(i2 - i1, j2 - j1)):
            i, j = i1 + offset, j1 + offset
            has_left, has_right = i < i2, j < j2
            kind = "replace" if has_left and has_right else "delete" if has_left else "insert"
            rows.append(
                DiffRow(
                    kind,
                    i + 1 if has_left else None,
                    left[i] if has_left else "",
                    j + 1 if has_right else None,
                    right[j] if has_right else "",
                )
            )
    return Diff(rows=rows, added=added, removed=removed)


def config_text(config: dict) -> str:
    """A config as stable, diffable lines (sorted keys, indented)."""
    return json.dumps(config, sort_keys=True, indent=2, ensure_ascii=False)
