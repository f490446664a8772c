import pytest

from prompts.templating import MissingVariables, compile_prompt, variables_of


def test_variables_in_order_of_first_appearance():
    assert variables_of("{{b}} {{ a }} {{b}} {x} {{1x}} {{_ok}}") == ["b", "a", "_ok"]


def test_compile_fills_every_placeholder_and_ignores_extras():
    text = compile_prompt(
        "Hi {{ name }}, {{n}} items, vip={{vip}} {{tags}} {{none}}",
        {
            "name": "Ada",
            "n": 3,
            "vip": True,
            "tags": ["a", "b"],
            "none": None,
            "extra": 1,
        },
    )
    assert text == 'Hi Ada, 3 items, vip=true ["a","b"] '


def test_values_are_not_reinterpreted_as_placeholders():
    assert compile_prompt("{{a}}", {"a": "{{b}}", "b": "no"}) == "{{b}}"


def test_missing_variables_are_all_named():
    with pytest.raises(MissingVariables) as caught:
        compile_prompt("{{a}} {{b}} {{c}}", {"b": 1})
    assert caught.value.names == ["a", "c"]
    assert "a, c" in str(caught.value)
