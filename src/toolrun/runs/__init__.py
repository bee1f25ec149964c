"""The engine: a run's steps, their attempts and retries, its events."""
