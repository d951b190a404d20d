"""Kundenpuls storage."""
