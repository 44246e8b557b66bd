"""Placeholder: models for the loyalty earning work of issue 12."""

__all__: list[str] = []
