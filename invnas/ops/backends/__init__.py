"""Involution backends."""
