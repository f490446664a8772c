"""The SDK's re-implementations give the platform's answers (no server needed).

The SDK must not import the platform, so its hashing, bucketing and templating are copies; these
tests hold each copy to the original on random inputs, non-ASCII and surrogate pairs included.
"""

from __future__ import annotations

import random

import pytest
from agentops_client import bucketing, templating
from agentops_client.evaluation import compile_payload, namespace_hash

from experiments import assignment
from experiments.growthbook import features_payload
from prompts import templating as platform_templating

ALPHABET = "abcXYZ019-_. é한글😀\u0000"


def random_strings(count: int, *, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 24))) for _ in range(count)]


def test_fnv1a32_and_hashes_equal_the_platform_s():
    for value in random_strings(3000, seed=1):
        assert bucketing.fnv1a32(value) == assignment.fnv1a32(value), value
        for version in (1, 2, 3):
            assert bucketing.gb_hash("seed", value, version) == assignment.gb_hash("seed", value, version)
        assert bucketing.namespace_position(value, "support") == assignment.namespace_hash(value, "support")


@pytest.mark.parametrize(
    ("count", "coverage", "weights"),
    [(2, 1, [0.5, 0.5]), (3, 0.4, [0.2, 0.3, 0.5]), (3, 1, [1, 1, 1]), (2, 2, None), (4, -1, [0.25] * 4)],
)
def test_bucket_ranges_equal_the_platform_s(count, coverage, weights):
    assert bucketing.bucket_ranges(count, coverage, weights) == assignment.bucket_ranges(count, coverage, weights)


def test_a_compiled_rule_assigns_as_the_platform_s_compiled_experiment():
    variants = [
        assignment.CompiledVariant(id=i, key=key, content=f"text {key}", version=i + 1)
        for i, key in enumerate(("a", "b", "c"))
    ]
    experiments = (
        assignment.CompiledExperiment.build(
            id=1,
            key="exp-one",
            seed="seed-one",
            prompt_type="support",
            namespace_start=0.1,
            namespace_end=0.55,
            weights=[1, 2, 3],
            variants=variants,
        ),
    )
    feature = compile_payload(features_payload({"support": experiments}))["support"]
    (rule,) = feature.rules
    for user in random_strings(5000, seed=2):
        expected = experiments[0].assign(user)
        got = rule.variation_for(user, namespace_hash(user)) if user else None
        assert (got.key if got else None) == (expected.key if expected else None), user
        if got:
            assert (got.content, got.version) == (expected.content, expected.version)


def test_templating_equals_the_platform_s():
    contents = ["Hi {{name}}, {{ turns }} turns; {{vip}} {{note}} {{obj}} {{ list }} {x} {{1bad}}"]
    variables = {"name": "Ada", "turns": 3, "vip": True, "note": None, "obj": {"k": "v"}, "list": [1, 2]}
    for content in contents:
        compiled, missing = templating.compile_prompt(content, variables)
        assert compiled == platform_templating.compile_prompt(content, variables)
        assert missing == ()
        assert templating.variables_of(content) == platform_templating.variables_of(content)
    compiled, missing = templating.compile_prompt("Hi {{name}} and {{other}}", {"name": "Ada"})
    assert (compiled, missing) == ("Hi Ada and {{other}}", ("other",))


def test_a_malformed_payload_is_refused_whole_or_skipped_in_parts():
    with pytest.raises(ValueError):
        compile_payload({"not": "features"})
    compiled = compile_payload(
        {"features": {"a": "not a feature", "b": {"defaultValue": "B", "rules": [{"key": "x"}, "junk"]}}}
    )
    assert set(compiled) == {"b"} and compiled["b"].rules == ()
