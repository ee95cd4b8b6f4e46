"""Benchmarks runnable as `hive bench ...` (scripts in benchmarks/ call these too)."""
