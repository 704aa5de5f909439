"""The tool world and the criteria: lookups and updates of the scenario's tables, and a
reward that is the product of the criteria, each part reported."""

from __future__ import annotations

from typing import Any

from glm_gym.collector import Collector, Reply, UserText
from glm_gym.conversation import said_by_turn
from glm_gym.criteria import judge
from glm_gym.scenarios import CATEGORIES, Scenario, load_scenarios, parse_scenario
from glm_gym.scripted import scripted_actions
from glm_gym.world import World

WEATHER = {
    "name": "get_weather",
    "description": "Weather of a city.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
}
CANCEL = {"name": "cancel_order", "description": "Cancel an order."}


def scenario(**success: Any) -> Scenario:
    return parse_scenario(
        {
            "id": "t",
            "category": "chained_tools",
            "brief": {"goal": "g"},
            "opening": "o",
            "follow_ups": ["say next", "barge in after 200 ms stop"],
            "tools": [WEATHER, CANCEL],
            "world": {
                "state": {
                    "weather": {"Paris": "sunny", "London": {"sky": "rain", "temp": 12}},
                    "orders": {"42": {"status": "shipped"}},
                },
                "effects": {
                    "get_weather": {"op": "lookup", "table": "weather", "key": "location"},
                    "cancel_order": {
                        "op": "update",
                        "table": "orders",
                        "key": "order",
                        "fields": ["reason"],
                        "set": {"status": "cancelled"},
                        "reply": "Order {order} is {status}.",
                    },
                },
            },
            "success": success or {"say": ["x"]},
        }
    )


def test_a_lookup_answers_the_row_ignoring_case_spacing_and_articles() -> None:
    world = World(scenario())
    assert world.call("get_weather", {"location": "  the PARIS "}).result == "sunny"
    row = world.call("get_weather", {"location": "london"})
    assert row.ok and '"sky": "rain"' in row.result
    missing = world.call("get_weather", {"location": "Oslo"})
    assert not missing.ok and "no location 'Oslo'" in missing.result
    assert [c.name for c in world.calls] == ["get_weather"] * 3


def test_an_update_changes_only_its_row_and_a_copy_of_the_state() -> None:
    s = scenario()
    world = World(s)
    done = world.call("cancel_order", {"order": "42", "reason": "late"})
    assert done.ok and done.result == "Order 42 is cancelled."
    assert world.state["orders"]["42"] == {"status": "cancelled", "reason": "late"}
    assert s.world.state["orders"]["42"] == {"status": "shipped"}  # the scenario is untouched
    refused = world.call("cancel_order", {"order": "99", "reason": "x"})
    assert not refused.ok and "no order '99'" in refused.result
    incomplete = world.call("cancel_order", {"order": "42"})
    assert not incomplete.ok and "reason" in incomplete.result
    assert not world.call("fly_me", {}).ok


def test_the_reward_is_the_product_of_the_parts() -> None:
    s = scenario(
        tool_calls=[{"name": "get_weather", "arguments": {"location": "paris"}}],
        end_state={"orders": {"42": {"status": "cancelled"}}},
        say=["sunny", {"text": "bye", "from_turn": 2}],
    )
    world = World(s)
    world.call("get_weather", {"location": "Paris"})
    good = judge(s, world.calls, world.state, {1: "It is sunny.", 2: "Bye!"})
    assert good.parts == {"tool_calls": 1.0, "end_state": 0.0, "say": 1.0}
    assert good.reward == 0.0
    assert good.details["end_state"]["wrong"] == [
        "orders.42.status: expected 'cancelled', got 'shipped'"
    ]
    world.call("cancel_order", {"order": "42", "reason": "r"})
    assert judge(s, world.calls, world.state, {1: "It is sunny.", 2: "Bye!"}).reward == 1.0
    early = judge(s, world.calls, world.state, {1: "It is sunny. Bye!"})
    assert early.parts["say"] == 0.0 and early.details["say"]["missing"] == ["bye"]


def test_extra_calls_fail_only_when_only_expected_calls_are_allowed() -> None:
    lenient = scenario(tool_calls=[])
    strict = scenario(tool_calls=[], only_expected_calls=True)
    world = World(strict)
    world.call("get_weather", {"location": "Paris"})
    assert judge(lenient, world.calls, world.state, {}).reward == 1.0
    verdict = judge(strict, world.calls, world.state, {})
    assert verdict.reward == 0.0
    assert verdict.details["tool_calls"]["unexpected"] == [
        {"name": "get_weather", "arguments": {"location": "Paris"}}
    ]


def test_each_expected_call_needs_its_own_actual_call() -> None:
    twice = [{"name": "get_weather", "arguments": {"location": "Paris"}}] * 2
    s = scenario(tool_calls=twice)
    world = World(s)
    world.call("get_weather", {"location": "Paris", "unit": "C"})
    assert judge(s, world.calls, world.state, {}).reward == 0.0
    world.call("get_weather", {"location": "paris"})
    assert judge(s, world.calls, world.state, {}).reward == 1.0


def test_flags_are_judged_both_ways() -> None:
    s = scenario(interrupted=True, spoke_in_silence=False)
    assert judge(s, [], {}, {}, interrupted=True).reward == 1.0
    assert judge(s, [], {}, {}, interrupted=False).parts["interrupted"] == 0.0
    assert judge(s, [], {}, {}, interrupted=True, spoke_in_silence=True).reward == 0.0


def test_fact_alternatives_count() -> None:
    s = scenario(say=[{"text": "one hundred", "alternatives": ["100"]}])
    assert judge(s, [], {}, {1: "At 100 degrees."}).reward == 1.0
    assert judge(s, [], {}, {1: "At one  Hundred degrees."}).reward == 1.0


def test_a_late_reply_is_credited_to_the_turn_it_answers() -> None:
    collector = Collector("collector")
    # Turn 1's transcript and reply arrive only after turn 2's line was spoken.
    collector.replies.append(Reply(1, 0.0, text="Hello!"))
    collector.user_texts += [UserText(2, 10.0, "my name is anna"), UserText(4, 20.0, "who am i")]
    collector.replies += [Reply(3, 15.0, text="You said anna."), Reply(5, 25.0, text="Dunno.")]
    assert said_by_turn(collector, [1, 2]) == {0: "Hello!", 1: "You said anna.", 2: "Dunno."}


def test_the_scripted_caller_plays_opening_follow_ups_then_hangs_up() -> None:
    actions = scripted_actions(scenario())
    assert [a.split("Action: ")[1] for a in actions] == [
        "say o",
        "say next",
        "barge in after 200 ms stop",
        "hang up",
    ]
    assert all(a.startswith("Thought: ") for a in actions)


def test_the_bundled_set_covers_every_category_with_forty_scenarios() -> None:
    scenarios = load_scenarios()
    assert len(scenarios) >= 40
    assert {s.category for s in scenarios} == set(CATEGORIES)
