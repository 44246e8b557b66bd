"""Placeholder: models for the loyalty lots work of issue 12."""

__all__: list[str] = []
