"""Kundenpuls handlers."""
