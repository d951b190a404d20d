"""Kundenpuls bot."""
