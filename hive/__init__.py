"""Hive: a compiler and runtime for multi-agent LLM workflows and test-time scaling."""

__version__ = "0.1.0"
