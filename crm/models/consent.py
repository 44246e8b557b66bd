"""CRM models: consent."""

__all__: list[str] = []
