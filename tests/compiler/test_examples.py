"""Every example in specs/ validates against the JSON Schema, compiles, and round-trips."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from hive.compiler import compile_spec, load_plan
from hive.compiler.ir import verify
from hive.compiler.schema import spec_schema

from .conftest import SPECS

EXPECTED_EXAMPLES = {
    "self_consistency", "best_of_n", "resample_verifier", "beam_search",
    "tree_of_thought", "refine", "hardware_review", "map_reduce", "panel_vote",
}  # fmt: skip


def test_every_pattern_has_an_example():
    assert {p.stem for p in SPECS} >= EXPECTED_EXAMPLES


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_example_matches_json_schema(path):
    data = yaml.safe_load(path.read_text())  # JSON is YAML too
    jsonschema.validate(data, spec_schema())


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_example_compiles_and_round_trips(path):
    plan = compile_spec(path)
    verify(plan.graph)
    assert plan.priorities.max_calls >= 1
    assert not plan.warnings
    again = load_plan(plan.to_json())
    assert again == plan
    assert json.loads(again.to_json()) == json.loads(plan.to_json())


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_example_declares_schema_for_editors(path):
    if path.suffix == ".json":
        assert json.loads(path.read_text())["$schema"] == "../schemas/hive-spec.schema.json"
    else:
        assert path.read_text().startswith(
            "# yaml-language-server: $schema=../schemas/hive-spec.schema.json"
        )


def test_json_spec_means_the_same_as_yaml(tmp_path):
    source = SPECS[0]
    as_json = tmp_path / (source.stem + ".json")
    as_json.write_text(json.dumps(yaml.safe_load(source.read_text()), indent=2))
    from_yaml, from_json = compile_spec(source), compile_spec(as_json)
    assert from_json.spec == from_yaml.spec
    assert from_json.priorities == from_yaml.priorities
    assert [c for c in from_json.graph.cache_nodes] == [c for c in from_yaml.graph.cache_nodes]
