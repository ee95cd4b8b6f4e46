"""`hive validate`, `hive compile --emit ...` and `hive schema` on the examples."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from hive.cli import app
from hive.compiler import load_plan

from .conftest import ROOT

runner = CliRunner()
EXAMPLE = str(ROOT / "specs" / "self_consistency.yaml")


def test_validate_all_examples():
    specs = sorted((ROOT / "specs").glob("*.*"))
    result = runner.invoke(app, ["validate", *map(str, specs)])
    assert result.exit_code == 0, result.output
    assert f"{len(specs)} valid, 0 invalid" in result.output


def test_compile_writes_a_plan_that_loads(tmp_path):
    out = tmp_path / "plan.json"
    result = runner.invoke(app, ["compile", EXAMPLE, "-o", str(out)])
    assert result.exit_code == 0, result.output
    plan = load_plan(out)
    assert plan.spec.name == "math-self-consistency"
    assert json.loads(out.read_text())["format"] == "hive-plan"


def test_compile_emit_ir_shows_cache_nodes_and_priorities():
    result = runner.invoke(app, ["compile", EXAMPLE, "--emit", "ir"])
    assert result.exit_code == 0
    assert "logits_cache @%1 scope=samples mode=exact max_paths=8" in result.stdout
    assert "agent solver: contribution=" in result.stdout


def test_compile_emit_graphs():
    mermaid = runner.invoke(app, ["compile", EXAMPLE, "--emit", "mermaid"]).stdout
    assert mermaid.startswith("flowchart TD")
    assert 'lc1[("logits cache<br/>samples, 8 paths")]' in mermaid
    assert "sample solver x8" in mermaid
    dot = runner.invoke(app, ["compile", EXAMPLE, "--emit", "dot"]).stdout
    assert dot.startswith('digraph "math-self-consistency"')
    assert "shape=cylinder" in dot and dot.rstrip().endswith("}")


def test_schema_command_matches_checked_in_file(tmp_path):
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert result.stdout == (ROOT / "schemas" / "hive-spec.schema.json").read_text()


def test_plan_error_is_clean(tmp_path):
    bad = tmp_path / "plan.json"
    bad.write_text('{"format": "hive-plan", "version": 99}')
    from hive.compiler import PlanError

    try:
        load_plan(bad)
    except PlanError as exc:
        assert "version 99 is not supported" in str(exc)
    else:
        raise AssertionError("expected PlanError")


def test_a_plan_given_where_a_spec_goes_is_one_clear_error(tmp_path):
    from hive.compiler import compile_spec

    plan = tmp_path / "plan.yaml"  # .yaml: read as a spec
    plan.write_text(compile_spec("specs/best_of_n.yaml").to_json())
    result = runner.invoke(app, ["validate", str(plan)])
    assert result.exit_code == 1
    assert result.output.count("error:") == 1, result.output
    assert "this is a compiled plan, not a spec" in result.output
    assert "run it with `hive run`" in result.output


def test_a_plan_of_a_spec_with_any_unicode_loads(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        'hive: 1\nname: t\ninputs: {q: string}\nagents:\n  a: {system: "You love 😀 and é", '
        'prompt: "{{ q }}"}\nflow: |\n  r = a(q)\n  return {t: r.text}\n',
        encoding="utf-8",
    )
    from hive.compiler import compile_spec

    plan = compile_spec(spec)
    assert load_plan(plan.to_json()).spec.agents["a"].system == "You love 😀 and é"


def test_a_plan_whose_graph_its_spec_does_not_compile_to_is_refused(tmp_path):
    """The runtime trusts a plan's graph: hand edits that would call an unknown agent or
    sample a trillion times are refused when the plan loads."""
    from hive.compiler import PlanError, compile_spec

    good = json.loads(compile_spec("specs/best_of_n.yaml").to_json())
    load_plan(json.dumps(good))  # the unedited plan loads

    def sample_node(plan):
        return next(n for n in plan["graph"]["body"]["nodes"] if n["op"] == "sample")

    for key, value in (("n", 10**12), ("n", 0), ("agent", "nobody")):
        edited = json.loads(json.dumps(good))
        sample_node(edited)["attrs"][key] = value
        with pytest.raises(PlanError, match="not what its spec compiles to"):
            load_plan(json.dumps(edited))
    edited = json.loads(json.dumps(good))
    edited["spec"]["flow"] = "x = = 1"
    with pytest.raises(PlanError, match="the plan's spec does not compile"):
        load_plan(json.dumps(edited))


@pytest.mark.parametrize("args", [["--agents", "0"], ["--calls", "-1"], ["--repeat", "0"]])
def test_bench_compile_rejects_counts_below_one(args):
    result = runner.invoke(app, ["bench", "compile", *args])
    assert result.exit_code == 2 and "greater than or equal to 1" in result.output


def test_bench_compile_runs_small():
    result = runner.invoke(
        app, ["bench", "compile", "--agents", "20", "--calls", "60", "--repeat", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["agents"] == 20 and figures["max_calls"] >= 60
