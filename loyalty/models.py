"""Loyalty models."""
