"""Hive's compiler: spec (YAML/JSON) -> typed IR -> passes -> versioned Plan.

from hive.compiler import load_spec, compile_spec, load_plan
plan = compile_spec(load_spec("specs/self_consistency.yaml"))
same = load_plan(plan.to_json())
"""

from hive.compiler.compile import (
    Compiled,
    LoadedSpec,
    compile_loaded,
    compile_spec,
    load_spec,
    load_spec_text,
)
from hive.compiler.errors import Diagnostic, PlanError, Span, SpecError
from hive.compiler.plan import Plan, load_plan
from hive.compiler.spec import Spec

__all__ = [
    "Compiled",
    "Diagnostic",
    "LoadedSpec",
    "Plan",
    "PlanError",
    "Span",
    "Spec",
    "SpecError",
    "compile_loaded",
    "compile_spec",
    "load_plan",
    "load_spec",
    "load_spec_text",
]
