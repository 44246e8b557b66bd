"""CRM models: redpackets."""

__all__: list[str] = []
