"""VoiceEnv: one live spoken conversation as an AgentGym environment.

The agent plays the caller. :meth:`VoiceEnv.reset` starts a call of a scenario (a graph
on the host, see :mod:`glm_gym.conversation`) and observes the caller's brief and the
assistant's greeting; :meth:`VoiceEnv.step` performs one ReAct action (see
:mod:`glm_gym.actions`) and returns once the assistant's turn is over (its response done
and settled, tool round trips included) or at the turn timeout (not done; ``info`` says
so). ``done`` on success, hang-up or the scenario's turn limit. The reward is the
product of the scenario's criteria (:mod:`glm_gym.criteria`), recomputed every step.

States::

    NEW --reset--> LIVE --step (hang up / success / turn limit)--> OVER
     ^               \\--reset--> LIVE (the old call is torn down first)
     \\----close---- any state --close--> CLOSED (reset starts again)

One task uses an env at a time (steps are serialised by a lock); many envs run at once
on one backend, each with its own graph and session.

Cancellation. Cancelling the task inside :meth:`VoiceEnv.step` or :meth:`VoiceEnv.reset`
ends it with ``CancelledError`` at its current wait (the turn timeout is a ``timeout``
scope around the task's own awaits, never ``asyncio.wait_for``, whose 3.10/3.11 version
returns the result instead when the turn ends as the cancel lands). The env is then OVER:
the caller falls silent, a later step says the call is over, and :meth:`close` or
:meth:`reset` tear the call down (a teardown finishes even when its task is cancelled).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from glm_gym.actions import BargeIn, HangUp, InvalidAction, Say, Wait, parse_action
from glm_gym.backends import Backend
from glm_gym.caller import FRAME_MS, Utterance
from glm_gym.collector import Reply
from glm_gym.conversation import VAD_SILENCE_MS, Call, call_length_ms, said_by_turn
from glm_gym.criteria import judge
from glm_gym.observations import brief_text, turn_text
from glm_gym.scenarios import Scenario
from realtime.compat import TIMEOUT_ERRORS, timeout

__all__ = ["StepResult", "VoiceEnv"]

TAIL_MS = VAD_SILENCE_MS + FRAME_MS
"""Silence after a line that goes out with it (the server VAD needs it to end the turn)."""
WAIT_GRACE_MS = 500.0
"""After a ``wait``, how long the assistant has to start speaking."""


@dataclass
class _Turn:
    since_seq: int
    utterance: Utterance | None = None


@dataclass(frozen=True)
class StepResult:
    """What reset and step return."""

    observation: str
    reward: float
    done: bool
    info: dict[str, Any]


class VoiceEnv:
    """See the module docstring. No task and no socket is made before :meth:`reset`."""

    def __init__(
        self, backend: Backend, scenarios: Sequence[Scenario], *, turn_timeout_s: float = 30.0
    ) -> None:
        if not scenarios:
            raise ValueError("VoiceEnv needs at least one scenario")
        if turn_timeout_s <= 0:
            raise ValueError(f"turn_timeout_s must be positive, got {turn_timeout_s}")
        self.backend = backend
        self.scenarios = list(scenarios)
        self.turn_timeout_s = turn_timeout_s
        self._call: Call | None = None
        self._lock = asyncio.Lock()
        self._last = StepResult("Call reset(data_idx) to start a conversation.", 0.0, False, {})
        self._turn = 0
        self._line_turns: list[int] = []  # the caller turn of each line spoken, in order
        self._over = False
        self._interrupted = False
        self._spoke_in_silence = False

    def __len__(self) -> int:
        return len(self.scenarios)

    @property
    def scenario(self) -> Scenario | None:
        """The scenario of the current call."""
        return None if self._call is None else self._call.scenario

    @property
    def clock(self) -> str:
        """``virtual`` or ``wall``: what the latencies in ``info`` are measured on."""
        return "virtual" if self.backend.virtual_clock else "wall"

    def observation(self) -> str:
        """The last observation."""
        return self._last.observation

    def detail(self) -> dict[str, Any]:
        """The last ``info``."""
        return self._last.info

    async def reset(self, data_idx: int) -> StepResult:
        """(Re)start the conversation of scenario ``data_idx``."""
        if isinstance(data_idx, bool) or not isinstance(data_idx, int):
            raise ValueError(f"data_idx must be an int, got {data_idx!r}")
        if not 0 <= data_idx < len(self.scenarios):
            raise ValueError(f"data_idx {data_idx} is outside 0..{len(self.scenarios) - 1}")
        async with self._lock:
            await self._teardown()
            scenario = self.scenarios[data_idx]
            self._turn, self._line_turns = 0, []
            self._over, self._interrupted, self._spoke_in_silence = False, False, False
            call = Call(scenario, self.backend)
            await call.start()  # on failure it is closed, and this env has no call
            self._call = call
            try:
                return await self._greet(call, data_idx)
            except asyncio.CancelledError:
                self._abandon(call, "reset")
                raise

    async def _greet(self, call: Call, data_idx: int) -> StepResult:
        scenario, collector, caller = call.scenario, call.collector, call.caller
        caller.listen(True)

        def ready() -> bool:
            return collector.fatal or collector.connected

        async def greeted() -> None:
            await collector.wait_for(ready)
            if scenario.greeting and not collector.fatal:
                await self._listen(call, 0, None)

        timed_out = not await self._wait(greeted())
        caller.listen(False)
        greeting = collector.replies[0] if collector.replies else None
        greeting_text = greeting.text if greeting else ""
        latencies: dict[str, Any] = {"clock": self.clock}
        if greeting is not None and greeting.first_audio_ms is not None:
            latencies["greeting_ms"] = round(greeting.first_audio_ms, 1)
        info = {
            "scenario_id": scenario.id,
            "category": scenario.category,
            "data_idx": data_idx,
            "turn": 0,
            "greeting": greeting_text,
            "latencies": latencies,
            "timed_out": timed_out,
            "errors": list(collector.errors),
            "clock_ms": call_length_ms(call),
            **self.backend.describe(),
        }
        observation = brief_text(scenario, greeting_text)
        self._last = StepResult(observation, 0.0, collector.fatal, info)
        self._over = collector.fatal
        return self._last

    async def step(self, action: str) -> StepResult:
        """Perform one ReAct action; see the module docstring."""
        async with self._lock:
            call = self._call
            if call is None:
                raise RuntimeError("no conversation: call reset(data_idx) first")
            if self._over:
                info = {**self._last.info, "error": "the call is over; reset to start another"}
                return StepResult("The call is over.", self._last.reward, True, info)
            parsed = parse_action(action)
            if isinstance(parsed, InvalidAction):
                info = {"turn": self._turn, "invalid_action": parsed.reason}
                self._last = StepResult(parsed.reason, 0.0, False, info)
                return self._last
            self._turn += 1
            try:
                if isinstance(parsed, HangUp):
                    await call.caller.hang_up()
                    self._over = True
                    self._last = self._result(call, {"action": "hang_up"}, hung_up=True)
                    return self._last
                self._last = await self._play(call, parsed)
                return self._last
            except asyncio.CancelledError:
                self._abandon(call, "step")
                raise

    def _abandon(self, call: Call, what: str) -> None:
        """A cancelled step or reset: the caller falls silent and the call is over (what
        the assistant heard of a line cut off is unknown); close or reset tear it down."""
        call.caller.fall_silent()
        self._over = True
        info = {
            **self._last.info,
            "cancelled": what,
            "error": f"the {what} was cancelled; reset to start another call",
        }
        reward = self._last.reward
        self._last = StepResult(f"The {what} was cancelled: the call is over.", reward, True, info)

    async def _play(self, call: Call, action: Say | BargeIn | Wait) -> StepResult:
        caller, collector = call.caller, call.collector
        since_seq, first_call = collector.last_seq, len(call.world.calls)
        last_reply = collector.replies[-1] if collector.replies else None
        playing_until = last_reply.playback_end_ms if last_reply is not None else None
        turn = _Turn(since_seq)
        caller.listen(True)
        try:
            timed_out = not await self._wait(self._perform(call, action, turn, playing_until))
        finally:
            caller.listen(False)
        barged = (
            isinstance(action, BargeIn)
            and turn.utterance is not None
            and turn.utterance.start_ms is not None
            and playing_until is not None
            and turn.utterance.start_ms < playing_until
        )
        extra = self._turn_figures(call, since_seq, first_call, turn.utterance, barged)
        if isinstance(action, Wait) and extra["assistant"]:
            self._spoke_in_silence = True
        extra["action"] = action.kind
        if isinstance(action, BargeIn):
            extra["barge_in_after_ms"] = action.after_ms
        return self._result(call, extra, timed_out=timed_out)

    async def _perform(
        self, call: Call, action: Say | BargeIn | Wait, turn: _Turn, playing_until: float | None
    ) -> None:
        caller, collector = call.caller, call.collector
        if isinstance(action, Wait):
            # The caller lets the assistant finish, then stays silent.
            target = max(caller.now_ms(), playing_until or 0.0) + action.seconds * 1000
            caller.fast_forward(target)
            await caller.wait_until(target + WAIT_GRACE_MS)
            if collector.current is not None or self._new_replies(call, turn.since_seq):
                await self._listen(call, turn.since_seq, None)
            return
        pcm = await self.backend.voice.render(action.words)
        last_reply = collector.replies[-1] if collector.replies else None
        if isinstance(action, BargeIn) and last_reply is not None:
            start = (last_reply.first_audio_ms or caller.now_ms()) + action.after_ms
        else:
            start = playing_until or 0.0  # a polite caller lets the assistant finish
        caller.fast_forward(start)
        await caller.wait_until(start)
        paced = isinstance(action, BargeIn)
        utterance = turn.utterance = caller.speak(pcm, tail_ms=TAIL_MS, paced=paced)
        self._line_turns.append(self._turn)
        await utterance.sent.wait()
        if self.backend.virtual_clock:
            await self._catch_up(call, turn.since_seq, utterance)
        await self._listen(call, turn.since_seq, utterance)

    async def _listen(self, call: Call, since_seq: int, utterance: Utterance | None) -> None:
        """Wait for the end of the assistant's turn. On the virtual clock time stops at its
        first audio: the caller hears the reply at 1x from there however fast or slow the
        rest of it is generated (see :class:`~glm_gym.collector.Reply`)."""
        collector = call.collector
        if self.backend.virtual_clock:

            def speaking() -> bool:
                current = collector.current
                return (
                    current is not None
                    and current.first_audio_ms is not None
                    or self._turn_over(call, since_seq, utterance)
                )

            await collector.wait_for(speaking)
            call.caller.listen(False)
        await collector.wait_for(lambda: self._turn_over(call, since_seq, utterance))

    async def _catch_up(self, call: Call, since_seq: int, utterance: Utterance) -> None:
        """Virtual clock: stop it once the line and the VAD's silence are out, until the
        backend has heard the line (it got the audio far faster than real time), so its
        catching up is not counted as latency. Nothing heard: the turn times out."""
        caller, collector = call.caller, call.collector
        assert utterance.end_ms is not None
        await caller.wait_until(utterance.end_ms + TAIL_MS)
        caller.listen(False)

        def heard() -> bool:
            return (
                any(u.seq > since_seq for u in collector.user_texts)
                or collector.current is not None
                or bool(self._new_replies(call, since_seq))
            )

        try:
            await collector.wait_for(heard)
        finally:
            caller.listen(True)

    async def _wait(self, waiter: Any) -> bool:
        """Await ``waiter`` up to the turn timeout; False if it timed out."""
        try:
            async with timeout(self.turn_timeout_s):
                await waiter
        except TIMEOUT_ERRORS:
            return False
        return True

    @staticmethod
    def _new_replies(call: Call, since_seq: int) -> list[Reply]:
        return [r for r in call.collector.replies if r.seq > since_seq]

    def _turn_over(self, call: Call, since_seq: int, utterance: Utterance | None) -> bool:
        collector = call.collector
        if collector.fatal:
            return True
        if utterance is not None and utterance.end_ms is None or collector.current is not None:
            return False
        replies = self._new_replies(call, since_seq)
        if not replies or not replies[-1].final:
            return False
        last_user = collector.user_texts[-1].seq if collector.user_texts else 0
        return replies[-1].seq > last_user

    def _turn_figures(
        self,
        call: Call,
        since_seq: int,
        first_call: int,
        utterance: Utterance | None,
        barged: bool,
    ) -> dict[str, Any]:
        replies = self._new_replies(call, since_seq)
        if call.collector.current is not None:
            replies.append(call.collector.current)
        calls = call.world.calls[first_call:]
        said = " ".join(r.text for r in replies if r.text)
        latencies: dict[str, Any] = {"clock": self.clock}
        audio_at = [r.first_audio_ms for r in replies if r.first_audio_ms is not None]
        if utterance is not None and utterance.end_ms is not None and audio_at:
            latencies["voice_to_voice_ms"] = round(audio_at[0] - utterance.end_ms, 1)
        if calls:
            # Dead air of the tool round trip: the call reached the world -> audio again.
            after = [at for at in audio_at if at >= calls[0].at_ms]
            if after:
                latencies["tool_wait_ms"] = round(after[0] - calls[0].at_ms, 1)
        interrupted = False
        if barged and utterance is not None and utterance.start_ms is not None:
            cuts = [f for f in call.collector.flushes if f >= utterance.start_ms]
            if cuts:
                interrupted = True
                latencies["barge_in_yield_ms"] = round(cuts[0] - utterance.start_ms, 1)
        self._interrupted = self._interrupted or interrupted
        return {
            "assistant": said,
            "heard": [u.text for u in call.collector.user_texts if u.seq > since_seq],
            "tool_calls": [c.to_json() for c in calls],
            "latencies": latencies,
            "interrupted": interrupted,
            "barged_in": barged,
        }

    def _result(
        self,
        call: Call,
        extra: dict[str, Any],
        *,
        timed_out: bool = False,
        hung_up: bool = False,
    ) -> StepResult:
        scenario = call.scenario
        verdict = judge(
            scenario,
            call.world.calls,
            call.world.state,
            said_by_turn(call.collector, self._line_turns),
            interrupted=self._interrupted,
            spoke_in_silence=self._spoke_in_silence,
        )
        fatal = call.collector.fatal
        success = verdict.reward == 1.0
        done = success or hung_up or fatal or self._turn >= scenario.max_turns
        self._over = self._over or done
        info: dict[str, Any] = {
            "scenario_id": scenario.id,
            "category": scenario.category,
            "turn": self._turn,
            "timed_out": timed_out,
            "hung_up": hung_up,
            "success": success,
            "criteria": verdict.to_json(),
            "errors": list(call.collector.errors),
            "clock_ms": call_length_ms(call),
            "world": copy.deepcopy(call.world.state),
            **extra,
        }
        info.setdefault("latencies", {"clock": self.clock})
        observation = turn_text(info, done=done)
        return StepResult(observation, verdict.reward, done, info)

    async def _teardown(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            await call.aclose()

    async def close(self) -> None:
        """End the call and free everything it holds; idempotent."""
        async with self._lock:
            await self._teardown()
            self._over = True
