"""Agents: thin, resumable wrappers around Stable-Baselines3, and what it lacks."""
