"""Bucketing agrees with GrowthBook: its own test vectors, and its Python SDK on many random users."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import pytest
from growthbook import Experiment as GBExperiment
from growthbook import GrowthBook
from growthbook.core import chooseVariation, gbhash, getBucketRanges, inNamespace
from scipy.stats import chisquare

from experiments.assignment import (
    CompiledExperiment,
    CompiledVariant,
    bucket_ranges,
    choose_variation,
    equal_weights,
    gb_hash,
    in_namespace,
)

# GrowthBook's own vectors (growthbook-python tests/cases.json, MIT), copied from
# shared/reference/growthbook-bucketing-cases.json so the suite never depends on a sibling folder.
CASES = json.loads((Path(__file__).parent / "growthbook_cases.json").read_text())


def _rounded(ranges):
    return [[round(start, 6), round(end, 6)] for start, end in ranges]


def _case_ids(section: str):
    return [str(case[0]) + ":" + str(case[1]) for case in CASES[section]]


@pytest.mark.parametrize("case", CASES["hash"], ids=_case_ids("hash"))
def test_hash_matches_growthbook_vector(case):
    seed, value, version, expected = case
    assert gb_hash(seed, value, version) == expected


@pytest.mark.parametrize("case", CASES["getBucketRange"], ids=_case_ids("getBucketRange"))
def test_bucket_ranges_match_growthbook_vector(case):
    _name, (num_variations, coverage, weights), expected = case
    assert _rounded(bucket_ranges(num_variations, coverage, weights)) == _rounded(expected)


@pytest.mark.parametrize("case", CASES["chooseVariation"], ids=_case_ids("chooseVariation"))
def test_choose_variation_matches_growthbook_vector(case):
    _name, n, ranges, expected = case
    assert choose_variation(n, [tuple(r) for r in ranges]) == expected


@pytest.mark.parametrize("case", CASES["inNamespace"], ids=_case_ids("inNamespace"))
def test_in_namespace_matches_growthbook_vector(case):
    _name, user_id, namespace, expected = case
    assert in_namespace(user_id, tuple(namespace)) is expected


@pytest.mark.parametrize("case", CASES["getEqualWeights"], ids=_case_ids("getEqualWeights"))
def test_equal_weights_match_growthbook_vector(case):
    num_variations, expected = case
    assert [round(w, 8) for w in equal_weights(num_variations)] == [round(w, 8) for w in expected]


_ALPHABET = string.ascii_letters + string.digits + "-_.@:/ éüßøçñ中文日本語한국어Ωπ€" + "😀🚀\U0001d518"


def _random_user_ids(count: int, rng: random.Random) -> list[str]:
    """Ids of mixed shapes: numbers, uuids-like, e-mails, non-ASCII and astral-plane characters."""
    ids = []
    for i in range(count):
        shape = i % 4
        if shape == 0:
            ids.append(str(rng.randrange(10**12)))
        elif shape == 1:
            ids.append(f"{rng.getrandbits(128):032x}")
        elif shape == 2:
            ids.append(f"user{rng.randrange(10**6)}@example.com")
        else:
            ids.append("".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(1, 24))))
    return ids


def test_primitives_agree_with_sdk_on_100k_random_users_including_coverage():
    rng = random.Random(20261127)
    users = _random_user_ids(100_000, rng)
    weights_options = [None, [0.5, 0.5], [0.2, 0.3, 0.5], [0.1, 0.1, 0.1, 0.7]]
    for i, user in enumerate(users):
        seed = ("exp-" + str(i % 7)) if i % 3 else user[:3]
        assert gb_hash(seed, user, 2) == gbhash(seed, user, 2)
        assert gb_hash(seed, user, 1) == gbhash(seed, user, 1)
        namespace = ("prompt-" + str(i % 5), (i % 10) / 10, (i % 10) / 10 + 0.35)
        assert in_namespace(user, namespace) == inNamespace(user, namespace)
        weights = weights_options[i % 4]
        num = len(weights) if weights else 2
        coverage = (i % 11) / 10  # 0 .. 1.0 in steps, and one above 1
        ours = bucket_ranges(num, coverage, weights)
        theirs = getBucketRanges(num, coverage, weights)
        assert ours == [tuple(r) for r in theirs]
        n = gb_hash(seed, user, 2)
        assert choose_variation(n, ours) == chooseVariation(n, theirs)


def _compiled(*, seed="greeting", prompt_type="support", start=0.0, end=1.0, weights=(1, 1)) -> CompiledExperiment:
    variants = [CompiledVariant(id=i, key=f"v{i}", content=f"content {i}") for i in range(len(weights))]
    return CompiledExperiment.build(
        id=1,
        key=seed,
        seed=seed,
        prompt_type=prompt_type,
        namespace_start=start,
        namespace_end=end,
        weights=list(weights),
        variants=variants,
    )


def test_compiled_experiment_agrees_with_sdk_run_on_100k_users_with_namespace():
    rng = random.Random(7)
    users = _random_user_ids(100_000, rng)
    configs = [
        _compiled(seed="tone", start=0.0, end=0.3, weights=(1, 1)),
        _compiled(seed="length-test", start=0.3, end=0.85, weights=(2, 1, 1)),
        _compiled(seed="full", start=0.0, end=1.0, weights=(0.15, 0.85)),
    ]
    for i, user in enumerate(users):
        compiled = configs[i % 3]
        gb = GrowthBook(attributes={"id": user})
        result = gb.run(
            GBExperiment(
                key=compiled.key,
                seed=compiled.seed,
                hashVersion=2,
                coverage=1,
                variations=[v.content for v in compiled.variants],
                weights=list(compiled.weights),
                namespace=(compiled.prompt_type, compiled.namespace_start, compiled.namespace_end),
            )
        )
        ours = compiled.assign(user)
        if result.inExperiment:
            assert ours is not None and ours.content == result.value
        else:
            assert ours is None


def test_split_matches_weights_by_chi_square():
    compiled = _compiled(seed="split", weights=(0.2, 0.3, 0.5))
    counts = [0, 0, 0]
    for i in range(60_000):
        counts[compiled.variant_index(f"user-{i}")] += 1
    expected = [0.2 * 60_000, 0.3 * 60_000, 0.5 * 60_000]
    assert chisquare(counts, expected).pvalue > 0.001


def test_slice_admits_its_share_of_users():
    compiled = _compiled(start=0.25, end=0.5)
    admitted = sum(compiled.in_slice(f"member-{i}") for i in range(40_000))
    assert chisquare([admitted, 40_000 - admitted], [10_000, 30_000]).pvalue > 0.001


def test_disjoint_slices_never_share_a_user():
    first = _compiled(seed="a", start=0.0, end=0.4)
    second = _compiled(seed="b", start=0.4, end=1.0)
    for i in range(20_000):
        user = f"u{i}"
        assert (first.assign(user) is not None) != (second.assign(user) is not None)


def test_empty_user_id_is_never_assigned():
    assert _compiled().assign("") is None


@pytest.mark.parametrize(("prefix", "rest"), [("seed", "user-1"), ("sé", "😀x"), ("", "abc"), ("ab", "")])
def test_fnv_continues_from_a_previous_state(prefix, rest):
    from experiments.assignment import fnv1a32

    assert fnv1a32(rest, fnv1a32(prefix)) == fnv1a32(prefix + rest)


def test_variant_indexes_gives_each_user_of_a_batch_the_answer_of_in_slice_and_variant_index():
    generator = random.Random(20)
    alphabet = string.ascii_letters + string.digits + "-_.:@"
    for _ in range(200):
        weights = [generator.random() + 0.01 for _ in range(generator.randint(1, 4))]
        start = generator.choice([0.0, generator.random() / 2])
        end = generator.choice([1.0, start + generator.random() / 2])
        compiled = CompiledExperiment.build(
            id=1,
            key="k",
            seed=generator.choice(["seed", "séed", "bench-resolve"]),
            prompt_type=generator.choice(["welcome", "bench-support", "tÿpe"]),
            namespace_start=start,
            namespace_end=end,
            weights=weights,
            variants=[CompiledVariant(id=i, key=f"v{i}", content="") for i in range(len(weights))],
        )
        users = [
            # Mostly ASCII ids of every length (hashed together), some with accents, CJK or an
            # astral character (two UTF-16 code units; hashed one by one).
            "".join(generator.choice(alphabet if generator.random() < 0.9 else "éü✓中𝄞") for _ in range(length))
            for length in (generator.randint(0, 40) for _ in range(generator.randint(0, 60)))
        ]
        expected = [compiled.variant_index(user) if compiled.in_slice(user) else None for user in users]
        assert compiled.variant_indexes(users) == expected
