"""Side-by-side diffs: aligned rows, changed blocks paired line by line, counts of added and removed lines."""

from __future__ import annotations

from prompts.diff import config_text, side_by_side


def test_changed_blocks_are_paired_and_leftovers_are_inserts_or_deletes():
    diff = side_by_side("a\nb\nc\nd", "a\nB\nB2\nc")
    assert [(row.kind, row.left_number, row.left, row.right_number, row.right) for row in diff.rows] == [
        ("equal", 1, "a", 1, "a"),
        ("replace", 2, "b", 2, "B"),
        ("insert", None, "", 3, "B2"),
        ("equal", 3, "c", 4, "c"),
        ("delete", 4, "d", None, ""),
    ]
    assert (diff.added, diff.removed, diff.changed) == (2, 2, True)  # added B, B2; removed b, d


def test_identical_texts_and_the_first_version_against_nothing():
    same = side_by_side("x\ny", "x\ny")
    assert not same.changed and [row.kind for row in same.rows] == ["equal", "equal"]
    first = side_by_side("", "only\nnew")
    assert [row.kind for row in first.rows] == ["insert", "insert"] and first.added == 2


def test_configs_compare_as_sorted_indented_json():
    assert config_text({"b": 1, "a": [1]}) == '{\n  "a": [\n    1\n  ],\n  "b": 1\n}'
    assert side_by_side(config_text({"a": 1, "b": 2}), config_text({"b": 2, "a": 1})).changed is False
