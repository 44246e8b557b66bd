"""CRM models: callbacks."""

__all__: list[str] = []
