"""Report math on hand-made records: pass^k, tool scores, latencies, files written."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glm_gym.evaluation import Collector, EvalError, EvalOptions, build_report
from glm_gym.records import ScenarioRecord, ToolCall, TurnRecord
from glm_gym.report import Report
from glm_gym.scoring import pass_at_k, pass_hat_k, tool_scores, trial_scores

pytest.importorskip("matplotlib")


def record(
    sid: str,
    trial: int,
    passed: bool,
    *,
    category: str = "question",
    made: list[ToolCall] | None = None,
    expected: list[ToolCall] | None = None,
    v2v: list[float] | None = None,
    errors: list[str] | None = None,
) -> ScenarioRecord:
    turns = [TurnRecord(index=0), TurnRecord(index=1, latencies_ms={"voice_to_voice": v2v or []})]
    return ScenarioRecord(
        scenario_id=sid,
        category=category,
        trial=trial,
        reward=1.0 if passed else 0.0,
        passed=passed,
        turns=turns,
        tool_calls=made or [],
        expected_tool_calls=expected or [],
        errors=errors or [],
        clock="virtual",
        audio_s=2.0,
        wall_s=0.5,
    )


def three_by_three() -> list[ScenarioRecord]:
    """a passes 2 of 3 trials, b 3 of 3, c 0 of 3."""
    wins = {"a": [True, False, True], "b": [True, True, True], "c": [False, False, False]}
    return [record(s, t, p) for s, runs in wins.items() for t, p in enumerate(runs)]


def test_pass_hat_k_follows_tau2_definition_on_hand_made_records() -> None:
    scores = trial_scores(three_by_three(), trials=3)
    assert scores["pass^k"]["1"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert scores["pass^k"]["2"] == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert scores["pass^k"]["3"] == pytest.approx(1 / 3)
    assert scores["pass@1"] == scores["pass^k"]["1"]
    assert scores["pass@k"]["2"] == pytest.approx(2 / 3)  # a and b pass at least once in 2


def test_pass_hat_k_skips_scenarios_with_fewer_trials_than_k() -> None:
    records = [record("a", 0, True), record("a", 1, True), record("b", 0, False)]
    scores = trial_scores(records, trials=2)
    assert scores["scenarios_with_k_trials"] == {"1": 2, "2": 1}
    assert scores["pass^k"]["2"] == 1.0
    assert scores["pass^k"]["1"] == pytest.approx(0.5)


@given(st.integers(1, 12).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))))
def test_pass_hat_k_never_grows_and_pass_at_k_never_shrinks_with_k(nc: tuple[int, int]) -> None:
    n, c = nc
    hats = [pass_hat_k(n, c, k) for k in range(1, n + 1)]
    ats = [pass_at_k(n, c, k) for k in range(1, n + 1)]
    assert hats[0] == pytest.approx(c / n) and ats[0] == pytest.approx(c / n)
    assert all(x >= y - 1e-12 for x, y in zip(hats, hats[1:], strict=False))
    assert all(x <= y + 1e-12 for x, y in zip(ats, ats[1:], strict=False))
    assert hats[-1] == (1.0 if c == n else 0.0)


@pytest.mark.parametrize(("n", "c", "k"), [(3, 4, 1), (3, 1, 0), (3, 1, 4), (0, 0, 1)])
def test_pass_k_rejects_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError, match="trials"):
        pass_hat_k(n, c, k)


def test_tool_scores_match_by_name_and_count_arguments_separately() -> None:
    city = {"city": "Paris"}
    expected = [ToolCall(name="weather", arguments=city), ToolCall(name="book", arguments={})]
    made = [
        ToolCall(name="weather", arguments={"city": " paris"}),  # equal ignoring case
        ToolCall(name="weather", arguments={"city": "Rome"}),  # no second weather expected
        ToolCall(name="time", arguments={}),
    ]
    wrong_args = [ToolCall(name="weather", arguments={"city": "Lyon"})]
    scores = tool_scores(
        [
            record("a", 0, False, made=made, expected=expected),
            record("b", 0, False, made=wrong_args, expected=[expected[0]]),
        ]
    )
    assert (scores["made"], scores["expected"], scores["matched"]) == (4, 3, 2)
    assert scores["precision"] == pytest.approx(2 / 4)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert scores["argument_accuracy"] == pytest.approx(1 / 2)


def test_tool_scores_are_none_without_calls_rather_than_a_made_up_zero() -> None:
    scores = tool_scores([record("a", 0, True)])
    assert scores["precision"] is None and scores["recall"] is None and scores["f1"] is None


def test_report_latency_figures_and_json_round_trip() -> None:
    records = [record("a", 0, True, v2v=[100.0, 300.0]), record("b", 0, False, v2v=[200.0])]
    report = Report(records=records, trials=1, meta={"backend": "local"})
    fig = report.summary["latency_ms"]["voice_to_voice"]
    assert (fig["count"], fig["p50"], fig["max"]) == (3, 200.0, 300.0)
    assert fig["p95"] == pytest.approx(290.0)
    assert report.summary["latency_ms"]["greeting"]["count"] == 0
    again = Report.from_json(report.to_json())
    assert again.summary == report.summary and again.records == report.records


def test_markdown_marks_virtual_clock_figures_and_partial_runs() -> None:
    report = Report(records=three_by_three(), trials=3, meta={"complete": False})
    text = report.to_markdown()
    assert "virtual clock" in text and "partial" in text
    assert "| 2 | 44.4 % |" in text  # pass^2 row


def test_report_write_gives_json_markdown_and_two_png_plots(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = Report(records=three_by_three(), trials=3).write(tmp_path / "out")
    data = json.loads(paths["report.json"].read_text())
    assert len(data["records"]) == 9 and data["summary"]["passed"] == 5
    for name in ("pass_rate_by_category.png", "latency.png"):
        blob = paths[name].read_bytes()
        assert blob[:8] == b"\x89PNG\r\n\x1a\n" and len(blob) > 5000


def test_collector_keeps_one_record_per_scenario_and_trial() -> None:
    seen: list[str] = []
    collector = Collector(total=2, on_record=lambda r: seen.append(r.scenario_id))
    assert collector.add(record("a", 0, True))
    assert not collector.add(record("a", 0, False))
    assert collector.add(record("a", 1, False))
    assert (collector.done, collector.passed, collector.duplicates) == (2, 1, 1)
    assert seen == ["a", "a"]


def test_build_report_gives_throughput_from_wall_time() -> None:
    report = build_report(three_by_three(), options=EvalOptions(), trials=3, meta={"wall_s": 3.0})
    assert report.meta["audio_s_per_wall_s"] == pytest.approx(9 * 2.0 / 3.0)
    assert report.meta["scenarios_per_min"] == pytest.approx(180.0)
    assert report.meta["clock"] == "virtual" and "api_key" not in json.dumps(report.meta)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "openai"}, "backend must be 'local' or 'glm'"),
        ({"turn_timeout_s": 0}, "turn timeout must be > 0"),
        ({"turn_timeout_s": math.nan}, "turn timeout must be > 0"),
        ({"max_sessions": 0}, "max sessions must be >= 1"),
        ({"server_url": "localhost:36001"}, "server URL must be http"),
    ],
)
def test_bad_eval_options_name_the_problem(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(EvalError, match=message):
        EvalOptions(**kwargs)  # type: ignore[arg-type]
