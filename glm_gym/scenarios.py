"""Spoken scenarios as data: the model, its JSON schema and the JSONL loader.

One scenario per line of a ``.jsonl`` file (the bundled set is ``glm_gym/data/
scenarios.jsonl``). A scenario holds what the caller wants and knows (``brief``), what
they say (``opening`` and scripted ``follow_ups``, written as actions), the tools the
assistant gets (JSON schemas), a ``world`` (its initial state as tables, and each tool
declared as a lookup into a table or an update of one: no Python per scenario) and the
success criteria in the manner of tau2 (expected tool calls, the world's end state,
facts the assistant must say). A file that does not fit raises :class:`ScenarioError`
naming the file, the line and the field. :func:`select_scenarios` picks scenarios by id or
category (the eval's ``--only``, a gym env's ``scenarios``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from glm_gym.actions import InvalidAction, parse_action
from realtime._validation import describe_validation_error

__all__ = [
    "CATEGORIES",
    "Brief",
    "Category",
    "ExpectedCall",
    "Fact",
    "Lookup",
    "Scenario",
    "ScenarioError",
    "Success",
    "ToolSchema",
    "UnknownScenarios",
    "Update",
    "WorldSpec",
    "load_scenarios",
    "parse_scenario",
    "select_scenarios",
    "scenario_json_schema",
]

Category = Literal[
    "small_talk",
    "question",
    "one_tool",
    "chained_tools",
    "correction",
    "barge_in",
    "silence",
    "out_of_scope",
    "recall",
]
CATEGORIES: tuple[Category, ...] = Category.__args__  # type: ignore[attr-defined]

Row = dict[str, Any]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScenarioError(ValueError):
    """A scenario file or object that does not fit; the message names file, line, field."""


class UnknownScenarios(ValueError):
    """Names given to :func:`select_scenarios` that are neither an id nor a category."""

    def __init__(self, unknown: Sequence[str], categories: Iterable[str]) -> None:
        self.unknown = list(unknown)
        self.categories = sorted(set(categories))
        super().__init__(
            f"no scenario id or category {', '.join(map(repr, self.unknown))}; "
            f"categories are {', '.join(self.categories)}"
        )


class Brief(_Strict):
    """What the caller is told: their goal and what they know."""

    goal: str = Field(min_length=1)
    knows: list[str] = []


class ToolSchema(_Strict):
    """A tool the assistant may call, as a JSON schema of its arguments."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    description: str = Field(min_length=1)
    parameters: dict[str, Any] = {"type": "object", "properties": {}}


class Lookup(_Strict):
    """The tool answers with the row of ``table`` whose key is argument ``key``."""

    op: Literal["lookup"] = "lookup"
    table: str
    key: str
    """The argument whose value is the row's key (matched ignoring case and spaces)."""


class Update(_Strict):
    """The tool sets fields of the row of ``table`` keyed by argument ``key``.

    The row gets each argument named in ``fields`` and the constants of ``set``; with
    ``create`` a missing row is added, else the call fails naming the key.
    """

    op: Literal["update"] = "update"
    table: str
    key: str
    fields: list[str] = []
    set: Row = {}
    create: bool = False
    reply: str = "done"
    """What the tool answers on success; ``{field}`` is replaced from the updated row."""


class WorldSpec(_Strict):
    """The tool world: tables of rows, and what each tool does to them."""

    state: dict[str, dict[str, Any]] = {}
    effects: dict[str, Lookup | Update] = {}


class ExpectedCall(_Strict):
    """A tool call the assistant must make; ``arguments`` must match (strings ignore case)."""

    name: str
    arguments: Row = {}


class Fact(_Strict):
    """Words the assistant must say (a case-insensitive substring of what it said).

    ``from_turn`` counts only what was said in reply to that caller turn or later (1 is
    the opening), so a recall question is answered after it is asked.
    """

    text: str = Field(min_length=1)
    alternatives: list[str] = []
    """Other ways of saying it (``"100"`` for ``"one hundred"``); any one is enough."""
    from_turn: int = Field(default=1, ge=1)

    def said_in(self, words: str) -> bool:
        """Whether ``words`` contain the fact or one of its alternatives (ignoring case)."""
        said = " ".join(words.split()).casefold()
        return any(" ".join(t.split()).casefold() in said for t in (self.text, *self.alternatives))


class Success(_Strict):
    """tau2-style criteria; the reward is the product of those present."""

    tool_calls: list[ExpectedCall] | None = None
    """Every expected call must be made; None: tool use is not judged."""
    only_expected_calls: bool = False
    """Any call beyond ``tool_calls`` fails (out-of-scope: ``tool_calls: []`` and true)."""
    end_state: dict[str, dict[str, Row]] | None = None
    """Rows whose fields must hold these values when the conversation ends."""
    say: list[Fact | str] = []
    """Facts the assistant must say; a bare string is a fact from turn 1."""
    interrupted: bool | None = None
    """True: a barge-in must stop the assistant's audio."""
    spoke_in_silence: bool | None = None
    """True: the assistant speaks up while the caller stays silent (``wait``); False: it
    keeps quiet."""

    def facts(self) -> list[Fact]:
        """``say`` with bare strings made into facts."""
        return [f if isinstance(f, Fact) else Fact(text=f) for f in self.say]


class Scenario(_Strict):
    """One spoken conversation to play and judge."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,79}$")
    category: Category
    brief: Brief
    opening: str = Field(min_length=1)
    """The caller's first line (spoken with ``say``)."""
    follow_ups: list[str] = []
    """The scripted caller's next actions, each an action line such as ``say ...``."""
    greeting: str = ""
    """What the assistant says first (its ``greeting`` property); empty: nothing."""
    instructions: str = ""
    """The assistant's prompt."""
    tools: list[ToolSchema] = []
    world: WorldSpec = WorldSpec()
    success: Success
    max_turns: int = Field(default=6, ge=1, le=50)

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            raise ValueError(f"tools: a tool name appears twice in {names}")
        for name, effect in self.world.effects.items():
            if name not in names:
                raise ValueError(f"world.effects.{name}: no tool of that name in 'tools'")
            if effect.table not in self.world.state and not (
                isinstance(effect, Update) and effect.create
            ):
                raise ValueError(f"world.effects.{name}: no table '{effect.table}' in world.state")
        missing = [n for n in names if n not in self.world.effects]
        if missing:
            raise ValueError(f"world.effects: no effect for tool(s) {', '.join(missing)}")
        for i, call in enumerate(self.success.tool_calls or ()):
            if call.name not in names:
                raise ValueError(f"success.tool_calls.{i}.name: no tool '{call.name}'")
        s = self.success
        flags = (s.interrupted, s.spoke_in_silence)
        if s.tool_calls is None and s.end_state is None and not s.say and flags == (None, None):
            raise ValueError(
                "success: give at least one of tool_calls, end_state, say, interrupted, "
                "spoke_in_silence"
            )
        for i, line in enumerate(self.follow_ups):
            action = parse_action(line)
            if isinstance(action, InvalidAction):
                raise ValueError(f"follow_ups.{i}: {action.reason}")
        return self


def scenario_json_schema() -> dict[str, Any]:
    """The JSON schema of one scenario line (what editors and CI validate against)."""
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "glm-realtime gym scenario (one JSONL line)"
    return schema


def parse_scenario(raw: object, where: str = "scenario") -> Scenario:
    """Validate one scenario object; :class:`ScenarioError` names ``where`` and the field."""
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(f"{where}: {describe_validation_error(exc)}") from exc


def load_scenarios(path: str | Path | None = None) -> list[Scenario]:
    """Every scenario of a JSONL file (None: the bundled set), in file order.

    Blank lines and lines starting with ``//`` are skipped.

    Raises:
        ScenarioError: unreadable file, a line that is not JSON or not a scenario, or a
            repeated id; the message names the file, the line and the field.
    """
    if path is None:
        return list(_bundled())
    return _load(Path(path))


def select_scenarios(scenarios: Sequence[Scenario], names: Iterable[str]) -> list[Scenario]:
    """The scenarios named by id or category in ``names`` (none: all), in their order.

    Raises:
        UnknownScenarios: every name that is neither an id nor a category of ``scenarios``.
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return list(scenarios)
    known = {s.id for s in scenarios} | {s.category for s in scenarios}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise UnknownScenarios(unknown, (s.category for s in scenarios))
    return [s for s in scenarios if s.id in wanted or s.category in wanted]


@cache
def _bundled() -> tuple[Scenario, ...]:
    data = resources.files("glm_gym") / "data" / "scenarios.jsonl"
    with resources.as_file(data) as file:
        return tuple(_load(file))


def _load(path: Path) -> list[Scenario]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read scenarios: {exc}") from exc
    scenarios: list[Scenario] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        where = f"{path}:{number}"
        try:
            raw = json.loads(line)
        except ValueError as exc:
            raise ScenarioError(f"{where}: not valid JSON: {exc}") from exc
        scenario = parse_scenario(raw, where)
        if scenario.id in seen:
            raise ScenarioError(
                f"{where}: id: '{scenario.id}' is already used on line {seen[scenario.id]}"
            )
        seen[scenario.id] = number
        scenarios.append(scenario)
    if not scenarios:
        raise ScenarioError(f"{path}: no scenarios in the file")
    return scenarios
