"""Placeholder: models for the loyalty till work of issue 12."""

__all__: list[str] = []
