"""The plan's Logits Cache nodes reach the engine requests of the calls they mark."""

from pathlib import Path

import pytest
from fake_engine import FakeEngine
from typer.testing import CliRunner

import hive
from hive.cli import app
from hive.runtime.errors import RunError

SPEC = "specs/self_consistency.yaml"


def modes(engine, agent):
    return {r.params.logits_cache for r in engine.requests if r.agent_id == agent}


def run(**options):
    engine = FakeEngine(lambda a, p, s: "Answer: 1" if a == "solver" else "no")
    hive.run(SPEC, {"question": "2+2?"}, engine=engine, seed=1, **options)
    return engine


def test_marked_calls_use_the_plans_mode_and_the_others_none():
    engine = run()
    assert modes(engine, "solver") == {"exact"}  # sample x 8 and resample: both marked
    assert modes(engine, "checker") == {None}  # called with a different answer each time


@pytest.mark.parametrize(("option", "solver"), [("hotspot", "hotspot"), ("off", None)])
def test_the_run_option_overrides_the_mode(option, solver):
    engine = run(logits_cache=option)
    assert modes(engine, "solver") == {solver}
    assert modes(engine, "checker") == {None}


def test_an_agents_own_setting_wins(tmp_path):
    text = (
        Path(SPEC)
        .read_text()
        .replace(
            "sampling: {temperature: 0, max_tokens: 2}",
            "sampling: {temperature: 0, max_tokens: 2, logits_cache: exact}",
        )
    )
    text = text.replace("max_tokens: 192}", "max_tokens: 192, logits_cache: 'off'}")
    spec = tmp_path / "s.yaml"
    spec.write_text(text)
    engine = FakeEngine(lambda a, p, s: "Answer: 1" if a == "solver" else "no")
    hive.run(str(spec), {"question": "2+2?"}, engine=engine, seed=1)
    assert modes(engine, "solver") == {None}
    assert modes(engine, "checker") == {"exact"}  # on for every call of the agent


def test_a_bad_option_is_a_clear_error():
    with pytest.raises(RunError, match="logits cache must be one of plan, exact, hotspot, off"):
        run(logits_cache="fast")
    result = CliRunner().invoke(app, ["run", SPEC, "-i", "question=1", "--logits-cache", "x"])
    assert result.exit_code != 0
    assert "logits cache must be one of" in result.output
    result = CliRunner().invoke(app, ["run", SPEC, "-i", "question=1", "--logits-cache-mb", "-1"])
    assert result.exit_code != 0
    assert "logits_cache_mb" in result.output


def test_a_negative_draft_length_is_a_clear_error():
    result = CliRunner().invoke(app, ["run", SPEC, "-i", "question=1", "--draft-tokens", "-1"])
    assert result.exit_code != 0
    assert "draft-tokens" in result.output
