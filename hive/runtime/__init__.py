"""Hive runtime: the inference engine (and, later, the plan executor)."""
