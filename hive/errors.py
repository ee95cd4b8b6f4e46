"""The root of Hive's error hierarchy.

User mistakes (a broken spec, a bad sampling parameter, a missing model) raise a
subclass of `HiveError`; the CLI prints its message and exits 1 without a
traceback. Internal invariants are plain `assert`s.
"""

from __future__ import annotations


class HiveError(Exception):
    """A user-facing error: its message says what is wrong and, where it helps, how to fix it."""
