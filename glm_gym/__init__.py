"""Spoken conversations as AgentGym environments: env, server, client, task and eval."""
