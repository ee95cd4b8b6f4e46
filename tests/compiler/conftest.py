from __future__ import annotations

from pathlib import Path

import pytest

from hive.compiler import compile_loaded, load_spec_text

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "specs").glob("*.yaml")) + sorted((ROOT / "specs").glob("*.json"))


@pytest.fixture
def compile_text():
    """Compile YAML text given inline; returns the plan."""

    def run(text: str, filename: str = "spec.yaml"):
        return compile_loaded(load_spec_text(text, filename)).plan

    return run
