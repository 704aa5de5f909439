"""Spoken conversations as AgentGym environments, on the extension and the embedded backend.

Scenarios are data (:mod:`glm_gym.scenarios`); :class:`~glm_gym.environment.VoiceEnv` plays
one as a live call on a :class:`~glm_gym.backends.Backend`, the agent acting as the caller.
"""
