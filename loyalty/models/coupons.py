"""Placeholder: models for the loyalty coupons work of issue 12."""

__all__: list[str] = []
