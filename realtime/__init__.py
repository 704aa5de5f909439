"""The GLM-Realtime wire protocol: typed events, audio packing, the connection."""
