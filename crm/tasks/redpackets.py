"""Celery tasks: thin wrappers that take ids and call a service."""
