"""Simulated meters and load: the demo, tests and load runs."""
