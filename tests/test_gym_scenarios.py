"""Scenario files: the bundled set loads, bad lines are named by file, line and field;
the caller's actions parse, and anything else gets an instructive error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from glm_gym.actions import BargeIn, HangUp, InvalidAction, Say, Wait, parse_action
from glm_gym.scenarios import (
    CATEGORIES,
    ScenarioError,
    UnknownScenarios,
    load_scenarios,
    scenario_json_schema,
    select_scenarios,
)


def minimal(**changes: Any) -> dict[str, Any]:
    scenario: dict[str, Any] = {
        "id": "hello",
        "category": "small_talk",
        "brief": {"goal": "Say hello."},
        "opening": "Hello.",
        "success": {"say": ["help"]},
    }
    scenario.update(changes)
    return scenario


def write(tmp_path: Path, *lines: object) -> Path:
    path = tmp_path / "set.jsonl"
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def test_the_bundled_set_loads_with_unique_ids() -> None:
    scenarios = load_scenarios()
    assert len({s.id for s in scenarios}) == len(scenarios)
    assert {s.category for s in scenarios} <= set(CATEGORIES)


def test_a_line_that_is_not_json_is_named_by_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, minimal(), "{not json")
    with pytest.raises(ScenarioError, match=rf"{path}:2: not valid JSON"):
        load_scenarios(path)


def test_a_missing_field_is_named_with_its_path(tmp_path: Path) -> None:
    bad = minimal()
    del bad["brief"]["goal"]
    path = write(tmp_path, "// a comment", "", bad)
    with pytest.raises(ScenarioError, match=rf"{path}:3: brief\.goal: Field required"):
        load_scenarios(path)


def test_an_unknown_category_lists_what_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, minimal(category="chit_chat"))
    with pytest.raises(ScenarioError, match=r":1: category: Input should be 'small_talk'"):
        load_scenarios(path)


def test_a_repeated_id_names_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, minimal(), minimal())
    with pytest.raises(ScenarioError, match=r":2: id: 'hello' is already used on line 1"):
        load_scenarios(path)


def test_a_tool_without_an_effect_and_a_bad_follow_up_are_refused(tmp_path: Path) -> None:
    tool = {"name": "get_weather", "description": "Weather of a city."}
    path = write(tmp_path, minimal(tools=[tool]))
    with pytest.raises(ScenarioError, match=r"no effect for tool\(s\) get_weather"):
        load_scenarios(path)
    path = write(tmp_path, minimal(follow_ups=["shout hello"]))
    with pytest.raises(ScenarioError, match=r"follow_ups\.0: Unknown action 'shout'"):
        load_scenarios(path)


def test_a_scenario_without_any_criterion_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, minimal(success={}))
    with pytest.raises(ScenarioError, match="give at least one of"):
        load_scenarios(path)


def test_an_empty_or_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no scenarios"):
        load_scenarios(write(tmp_path, "// nothing"))
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenarios(tmp_path / "absent.jsonl")


def test_the_json_schema_describes_every_field() -> None:
    schema = scenario_json_schema()
    assert set(schema["required"]) == {"id", "category", "brief", "opening", "success"}
    assert set(schema["properties"]["category"]["enum"]) == set(CATEGORIES)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Thought: greet\nAction: say Hello there.", Say("Hello there.")),
        ('Action: say "What time is it?"', Say("What time is it?")),
        ("say   spaced    words", Say("spaced words")),
        ("Action: barge in Stop, please.", BargeIn("Stop, please.", 0)),
        ("Action: barge in after 400 ms Actually, London.", BargeIn("Actually, London.", 400)),
        ("Action: wait 3", Wait(3.0)),
        ("Action: wait 2.5 seconds", Wait(2.5)),
        ("Thought: bye\nAction: hang up", HangUp()),
        ("Action: Hang-up.", HangUp()),
    ],
)
def test_each_action_parses(text: str, expected: object) -> None:
    assert parse_action(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Action: say hi\nAction: hang up", "2 'Action:' lines"),
        ("Action: dance", "Unknown action 'dance'"),
        ("Action: say", "'say' needs the words"),
        ("Action: barge in after 200 ms", "'barge in' needs the words"),
        ("Action: wait forever", "'wait' needs a number of seconds"),
        ("Action: wait 0", "0 < seconds"),
        ("Thought: nothing to do", "no 'Action:' line"),
        ("", "no action"),
    ],
)
def test_anything_else_is_an_invalid_action_saying_what_is_accepted(text: str, reason: str) -> None:
    action = parse_action(text)
    assert isinstance(action, InvalidAction)
    assert reason in action.reason


def test_the_shipped_schema_file_is_the_models_schema() -> None:
    from importlib import resources

    shipped = resources.files("glm_gym") / "data" / "scenario.schema.json"
    assert json.loads(shipped.read_text(encoding="utf-8")) == scenario_json_schema(), (
        "regenerate glm_gym/data/scenario.schema.json from scenario_json_schema()"
    )


def test_select_scenarios_takes_ids_and_categories_in_file_order_and_names_every_unknown() -> None:
    every = load_scenarios()
    first, last = every[0], every[-1]
    category = next(s.category for s in every if s.category != first.category)
    chosen = select_scenarios(every, [last.id, category, first.id, first.id])
    assert chosen == [s for s in every if s in (first, last) or s.category == category]
    assert select_scenarios(every, []) == every
    with pytest.raises(UnknownScenarios, match="'typo', 'other'; categories are ") as caught:
        select_scenarios(every, ["typo", first.id, "other", "typo"])
    assert caught.value.unknown == ["typo", "other"]
    assert caught.value.categories == sorted({s.category for s in every})
