"""AudioClock: how far a session runs behind its client's audio, on made-up clocks."""

from __future__ import annotations

import pytest

from glm_local.lag import AudioClock


def test_a_real_time_client_on_a_server_that_keeps_up_lags_by_the_handling_time() -> None:
    clock = AudioClock()
    for k in range(1, 50):  # packet k carries audio up to k/10 s, sent as it ends
        sent = 100.0 + k / 10
        assert clock.handled(sent, k / 10, sent + 0.004) == pytest.approx(0.004)
    assert clock.max_lag_s == pytest.approx(0.004)


def test_an_overloaded_server_lags_by_what_it_could_not_keep_up_with() -> None:
    """Each 100 ms packet takes 150 ms to handle: after 3 s of audio, 1.5 s behind, although
    every packet waited (arrived) only just before it was handled."""
    clock = AudioClock()
    now = 100.0
    for k in range(1, 31):
        arrived = now - 0.001 if k > 1 else 100.0  # held at the socket until there was room
        now = max(now, arrived) + 0.15
        lag = clock.handled(arrived, k / 10, now)
    assert lag == pytest.approx(0.15 + 29 * 0.05)
    assert clock.max_lag_s > 1.0


def test_a_client_faster_than_real_time_is_never_behind() -> None:
    clock = AudioClock()
    now = 100.0
    for k in range(1, 100):  # 10 s of audio, all sent at once, handled in 2 s
        now += 0.02
        assert clock.handled(100.0, k / 10, now) < 0.05


def test_a_pause_by_the_client_moves_the_clock_on() -> None:
    clock = AudioClock()
    clock.handled(100.0, 1.0, 100.01)
    assert clock.handled(160.0, 1.1, 160.01) == pytest.approx(0.01)  # a minute later
