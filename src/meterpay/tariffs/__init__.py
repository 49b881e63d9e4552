"""Tariffs: versioned price rules with effective dates."""
