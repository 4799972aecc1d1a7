"""The campaigns of issue 20: fault injection (broker restarts, kill -9 mid-commit, a full disk), wall-clock
steps and DST changes under the scene engine, a soak of the simulated house, and fuzzing of the codecs,
the loaders and the HTTP API. Bounded in CI (test_*.py here); ``scripts/campaign`` runs them longer."""
