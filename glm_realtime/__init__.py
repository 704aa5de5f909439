"""GLM realtime session, extension node, graph host and CLI."""
