"""Admin: campaigns."""
