"""Pydantic models: the single definition of every payload."""
