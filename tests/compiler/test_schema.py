from __future__ import annotations

import json

import jsonschema

from hive.compiler.schema import spec_schema, spec_schema_text

from .conftest import ROOT

SCHEMA_FILE = ROOT / "schemas" / "hive-spec.schema.json"


def test_checked_in_schema_is_current():
    assert SCHEMA_FILE.read_text() == spec_schema_text(), (
        "run: hive schema -o schemas/hive-spec.schema.json"
    )


def test_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(spec_schema())


def test_every_field_has_a_description():
    schema = json.loads(SCHEMA_FILE.read_text())
    missing = []
    for name, definition in [("Spec", schema), *schema["$defs"].items()]:
        for field, prop in definition.get("properties", {}).items():
            if "description" not in prop:
                missing.append(f"{name}.{field}")
    assert not missing, f"fields without a description: {missing}"


def test_schema_rejects_unknown_keys():
    bad = {
        "hive": 1,
        "name": "x",
        "agents": {"a": {"prompt": "p", "promt": "q"}},
        "flow": "return 1",
    }
    validator = jsonschema.Draft202012Validator(spec_schema())
    assert any("promt" in e.message for e in validator.iter_errors(bad))
