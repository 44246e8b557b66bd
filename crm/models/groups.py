"""CRM models: groups."""

__all__: list[str] = []
