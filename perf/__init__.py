"""Benchmarks: each prints its figures (`python -m perf.<name>`); none is a test."""
