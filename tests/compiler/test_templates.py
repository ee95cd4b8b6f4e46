"""Template analysis: parameters in order of use, the same as Jinja's own scoping."""

from __future__ import annotations

import pytest
from jinja2 import meta

from hive.compiler.templates import TemplateProblem, environment, static_prefix, variables

TEMPLATES = [
    "{{ a }} {{ b | upper }} {% if c %}{{ d }}{% endif %}",
    "{{ x.y[z] }} {{ a | default(b) }} {{ range(3) | list }}",
    "{% filter upper %}{{ t }}{% endfilter %}{{ a is defined }}",
    # With assignments: Jinja's code generator resolves the scopes.
    "{% for s in steps %}{{ s }}{{ loop.index }}{% endfor %}{{ q }}",
    "{% set n = items | length %}{{ n }} {{ other }}",
    "{% macro m(p) %}{{ p }}{{ outer }}{% endmacro %}{{ m(arg) }}",
]


@pytest.mark.parametrize("source", TEMPLATES)
def test_variables_match_jinja(source):
    env = environment()
    expected = meta.find_undeclared_variables(env.parse(source)) - set(env.globals)
    assert set(variables(source)) == expected


def test_variables_in_order_of_first_use():
    assert variables("{{ b }} {{ a }} {{ b }} {% if c %}{{ a }}{% endif %}") == ["b", "a", "c"]
    assert variables("No tags at all.") == []


@pytest.mark.parametrize(
    "source, message",
    [
        ("{{ x | shout }}", "No filter named 'shout'."),
        ("{{ x is shouty }}", "No test named 'shouty'."),
        ("{% for a in b %}{{ a | nope }}{% endfor %}", "No filter named 'nope'."),
        ("line 1\n{{ x", "unexpected end of template"),
    ],
)
def test_template_problems(source, message):
    with pytest.raises(TemplateProblem, match=message):
        variables(source)


def test_static_prefix_stops_at_the_first_tag():
    assert static_prefix("Solve: {{ q }} then {% if x %}") == "Solve: "
    assert static_prefix("{# c #} text") == ""
    assert static_prefix("all static") == "all static"
