"""Spec -> IR text with every pass's annotations, compared with golden files.

Regenerate after an intended change with: HIVE_UPDATE_GOLDEN=1 pytest tests/compiler
"""

from __future__ import annotations

import os

import pytest

from hive.compiler import compile_spec
from hive.compiler.report import format_ir_report

from .conftest import ROOT, SPECS

GOLDEN = ROOT / "tests" / "compiler" / "golden"


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_ir_matches_golden(path):
    text = format_ir_report(compile_spec(path))
    golden = GOLDEN / f"{path.stem}.ir"
    if os.environ.get("HIVE_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden}; run with HIVE_UPDATE_GOLDEN=1"
    assert text == golden.read_text()


def test_self_consistency_ir_shows_cache_nodes_and_priorities():
    text = format_ir_report(compile_spec(ROOT / "specs" / "self_consistency.yaml"))
    assert "logits_cache @%1 scope=samples mode=exact max_paths=8" in text
    assert "scope=resample mode=exact max_paths=4" in text
    assert "agent solver: contribution=" in text
    assert "next-use order: solver -> checker" in text
