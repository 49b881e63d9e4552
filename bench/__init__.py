"""Benchmarks, each printing its figures against a baseline measured in the same run.

Run one with ``python -m bench.<name>`` (``make bench`` runs ``bench.ingest``).
They print; they never assert on wall-clock time.
"""
