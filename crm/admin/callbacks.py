"""Admin: callbacks."""
