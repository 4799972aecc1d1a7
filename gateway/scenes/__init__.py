"""Whole-house scenes: the profile language, the engine, alerts and notifications."""
