"""Placeholder: models for the loyalty tiers work of issue 12."""

__all__: list[str] = []
