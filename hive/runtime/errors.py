"""Errors raised while running a workflow.

Each names what failed (the agent, the call's inputs, the flow position)
so the CLI can print it as one line and exit non-zero, never a traceback.
"""

from __future__ import annotations

from hive.errors import HiveError


class RunError(HiveError):
    """The workflow failed at run time (a template, a call, an operation on a value)."""


class InputError(RunError):
    """The run's inputs do not match the spec's declared inputs."""
