"""Kundenpuls surveys."""
