"""VoiceEnv: one live spoken conversation as an AgentGym environment.

The agent plays the caller. :meth:`VoiceEnv.reset` starts a call of a scenario (a graph
on the host, see :mod:`glm_gym.conversation`) and observes the caller's brief and the
assistant's greeting; :meth:`VoiceEnv.step` performs one ReAct action (see
:mod:`glm_gym.actions`) and returns once the assistant's turn is over (its response done
and settled, tool round trips included) or at the turn timeout (not done; ``info`` says
so). ``done`` on success, hang-up or the scenario's turn limit. The reward is the
product of the scenario's criteria (:mod:`glm_gym.criteria`), recomputed every step.

When the next action starts. The agent acts at the reply's first audio, so that a
``barge in`` lands N ms into it. On the virtual clock time stops there until the whole
turn is over (the agent reads every word). The wall clock cannot stop: there a step
returns at the first audio of its answer (``info["speaking"]``, words so far) and the
reply plays on; a barge-in cuts it, a line or a silence first lets it finish (its words
in ``info["previous_reply"]``). See :mod:`glm_gym.turns`.

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
from typing import Any

from glm_gym.actions import BargeIn, HangUp, InvalidAction, Say, Wait, parse_action
from glm_gym.backends import Backend
from glm_gym.caller import FRAME_MS
from glm_gym.collector import Collector, Reply
from glm_gym.conversation import VAD_SILENCE_MS, Call, call_length_ms, said_by_turn
from glm_gym.criteria import judge
from glm_gym.observations import brief_text, turn_text
from glm_gym.records import StepResult
from glm_gym.scenarios import Scenario
from glm_gym.turns import Turn, still_speaking
from realtime.compat import TIMEOUT_ERRORS, timeout

__all__ = ["StepResult", "VoiceEnv"]

TAIL_MS = VAD_SILENCE_MS + FRAME_MS
"""Silence after a line that goes out with it (the server VAD needs it to end the turn)."""
WAIT_GRACE_MS = 500.0
"""After a ``wait``, how long the assistant has to start speaking."""


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
                await self._listen(call, Turn(0))

        timed_out = not await self._wait(greeted())
        caller.listen(False)
        greeting = collector.replies[0] if collector.replies else collector.current
        greeting_text = greeting.text if greeting else ""
        latencies: dict[str, Any] = {"clock": self.backend.clock}
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
            "speaking": still_speaking(collector),
            **self.backend.describe(),
        }
        observation = brief_text(scenario, greeting_text, speaking=info["speaking"])
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
                    turn = Turn(call.collector.last_seq)
                    await self._wait(self._let_finish(call, turn))  # a polite goodbye
                    await call.caller.hang_up()
                    self._over = True
                    extra = {"action": "hang_up"}
                    if turn.previous_reply:
                        extra["previous_reply"] = turn.previous_reply
                    self._last = self._result(call, extra, hung_up=True)
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
        first_call = len(call.world.calls)
        turn = Turn(collector.last_seq)
        caller.listen(True)
        try:
            timed_out = not await self._wait(self._perform(call, action, turn))
        finally:
            caller.listen(False)
        start = turn.utterance.start_ms if turn.utterance is not None else None
        over = turn.spoke_over.playback_end_ms if turn.spoke_over is not None else None
        barged = start is not None and over is not None and start < over
        extra = turn.figures(
            collector,
            call.world,
            first_call,
            barged=barged,
            clock=self.backend.clock,
        )
        self._interrupted = self._interrupted or extra["interrupted"]
        if isinstance(action, Wait) and any(r.text for r in turn.answers(collector)):
            self._spoke_in_silence = True
        extra["action"] = action.kind
        if isinstance(action, BargeIn):
            extra["barge_in_after_ms"] = action.after_ms
        if turn.previous_reply:
            extra["previous_reply"] = turn.previous_reply
        return self._result(call, extra, timed_out=timed_out)

    async def _perform(self, call: Call, action: Say | BargeIn | Wait, turn: Turn) -> None:
        caller, collector = call.caller, call.collector
        if isinstance(action, BargeIn):
            target = turn.spoke_over = self._barge_target(collector)
            start = caller.now_ms()
            if target is not None:
                start = (target.first_audio_ms or start) + action.after_ms
        else:
            await self._let_finish(call, turn)
            start = turn.playing_until or 0.0  # a polite caller lets the assistant finish
        if isinstance(action, Wait):
            turn.from_ms = max(caller.now_ms(), start)
            target_ms = turn.from_ms + action.seconds * 1000
            caller.fast_forward(target_ms)
            await caller.wait_until(target_ms + WAIT_GRACE_MS)
            if turn.answers(collector):
                await self._listen(call, turn)
            return
        pcm = await self.backend.voice.render(action.words)
        caller.fast_forward(start)
        await caller.wait_until(start)
        turn.from_ms = caller.now_ms()
        paced = isinstance(action, BargeIn)
        utterance = turn.utterance = caller.speak(pcm, tail_ms=TAIL_MS, paced=paced)
        self._line_turns.append(self._turn)
        await utterance.sent.wait()
        if self.backend.virtual_clock:
            await self._catch_up(call, turn)
        await self._listen(call, turn)

    @staticmethod
    def _barge_target(collector: Collector) -> Reply | None:
        """The reply a barge-in speaks over: the one streaming, else the last one."""
        if still_speaking(collector):
            return collector.current
        return collector.replies[-1] if collector.replies else None

    async def _let_finish(self, call: Call, turn: Turn) -> None:
        """Before a line or a silence: the reply the last step left streaming (wall clock)
        ends first; its words go to ``previous_reply``, this turn counts from here."""
        collector = call.collector
        streaming = collector.current
        if streaming is not None:
            await collector.wait_for(lambda: collector.current is None or collector.fatal)
            turn.previous_reply = streaming.text
            turn.since_seq = collector.last_seq
        last = collector.replies[-1] if collector.replies else None
        turn.playing_until = last.playback_end_ms if last is not None else None

    async def _listen(self, call: Call, turn: Turn) -> None:
        """Wait for the assistant's answer to be heard. On the virtual clock time stops at
        its first audio and the step returns once the whole turn is over: the caller hears
        the reply at 1x from there however fast or slow the rest of it is generated (see
        :class:`~glm_gym.collector.Reply`), and the next action starts at that point of
        it. The wall clock cannot stop, so the step returns at the first audio and the
        reply plays on: a barge-in cuts it, a line or a silence lets it finish."""
        collector = call.collector
        await collector.wait_for(lambda: turn.speaking(collector) or turn.over(collector))
        if self.backend.virtual_clock:
            call.caller.listen(False)
            await collector.wait_for(lambda: turn.over(collector))

    async def _catch_up(self, call: Call, turn: Turn) -> None:
        """Virtual clock: stop it once the line and the VAD's silence are out, until the
        backend has heard the line (it got the audio far faster than real time), so its
        catching up is not counted as latency. Nothing heard: the turn times out."""
        caller, collector = call.caller, call.collector
        utterance = turn.utterance
        assert utterance is not None and utterance.end_ms is not None
        await caller.wait_until(utterance.end_ms + TAIL_MS)
        caller.listen(False)

        def heard() -> bool:
            return any(u.seq > turn.since_seq for u in collector.user_texts) or bool(
                turn.answers(collector)
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
        info.setdefault("latencies", {"clock": self.backend.clock})
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
