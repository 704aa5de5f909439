"""Embedded local GLM-Realtime backend built on offline speech parts."""
