"""CRM models: campaigns."""

__all__: list[str] = []
