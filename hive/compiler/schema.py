"""The JSON Schema of the spec format, generated from the Pydantic models.

The checked-in copy (`schemas/hive-spec.schema.json`) is what editors use; a
test keeps it equal to `spec_schema()`.
"""

from __future__ import annotations

import json
from typing import Any

from hive.compiler.spec import Spec

SCHEMA_ID = "https://hive.dev/schemas/hive-spec.schema.json"


def spec_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Hive workflow spec",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def spec_schema_text() -> str:
    return json.dumps(spec_schema(), indent=2, sort_keys=False) + "\n"
