"""Admin: contacts."""
