"""Shared test setup: every test carries its area's marker (see pyproject.toml)."""
