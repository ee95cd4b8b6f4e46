"""Hive: a compiler and runtime for multi-agent LLM workflows and test-time scaling."""

__version__ = "0.1.0"


def __getattr__(name: str):  # lazily: `import hive` must not load torch for the compiler
    if name in ("run", "arun", "Result"):
        from hive.runtime import run as run_module

        return getattr(run_module, name)
    raise AttributeError(f"module 'hive' has no attribute {name!r}")
