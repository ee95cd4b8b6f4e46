import pytest

from hive.compiler import strict_json


def test_json_loads_as_json():
    assert strict_json.loads('{"a": [1, 2.5, "NaN", true, null]}') == {
        "a": [1, 2.5, "NaN", True, None]
    }


@pytest.mark.parametrize(
    ("text", "kind", "message", "line", "col"),
    [
        ('{"a": 1,\n "b": }', "syntax", "Expecting value", 2, 7),
        ('{"s": "NaN",\n "x": NaN}', "constant", "NaN is not a JSON number", 2, 7),
        ("[1, -Infinity]", "constant", "-Infinity is not a JSON number", 1, 5),
        ("[" + "9" * 5000 + "]", "too large", "a number is too large", 1, 1),
        ("[" * 100_000, "too deep", "it nests too deeply", 1, 1),
    ],
)
def test_every_failure_is_one_error_with_a_position(text, kind, message, line, col):
    with pytest.raises(strict_json.JSONProblem) as info:
        strict_json.loads(text)
    problem = info.value
    assert (problem.kind, problem.message, problem.line, problem.col) == (kind, message, line, col)
