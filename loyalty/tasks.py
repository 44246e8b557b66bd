"""Loyalty Celery tasks."""
