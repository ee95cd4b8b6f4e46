"""`hive run` and its options, on a scripted engine (the model's own test is elsewhere)."""

import json

import pytest
from fake_engine import FakeEngine
from test_executor import universal_reply
from typer.testing import CliRunner

from hive.cli import app
from hive.runtime import run as run_module

runner = CliRunner()


@pytest.fixture
def fake(monkeypatch):
    engines = []

    def make_engine(model, **options):
        engine = FakeEngine(universal_reply)
        engine.model, engine.options = model, options
        engines.append(engine)
        return engine

    monkeypatch.setattr(run_module, "make_engine", make_engine)
    return engines


def test_run_prints_the_outputs_and_a_cost_line(fake):
    result = runner.invoke(app, ["run", "specs/self_consistency.yaml", "-i", "question=2+2?"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("answer: ")
    assert "verified: " in result.stdout
    assert "calls" in result.stderr and "prompt tokens from the prefix cache" in result.stderr
    assert fake[0].model == "smollm2-135m" and fake[0].options["eviction_policy"] == "workflow"


def test_run_json_and_trace(fake, tmp_path):
    trace = tmp_path / "t.json"
    result = runner.invoke(
        app,
        ["run", "specs/panel_vote.json", "-i", "message=hi", "--json", "--trace", str(trace),
         "--seed", "5", "--policy", "lfu", "--model", "my-model"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data["outputs"]) == {"label", "votes"}
    assert data["metrics"]["calls"] == 3 and len(data["calls"]) == 3
    assert fake[0].model == "my-model" and fake[0].options["eviction_policy"] == "lfu"
    events = json.loads(trace.read_text())["traceEvents"]
    tracks = {e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert tracks == {"flow", "agent strict", "agent lenient", "agent expert"}
    slices = [e for e in events if e["ph"] == "X"]
    assert len(slices) == 3 and all("prefix_cache_hit_tokens" in e["args"] for e in slices)
    assert {e["args"]["prefix_group"] for e in slices} == {"g0", "g1", "g2"}
    assert any(e["ph"] == "i" and e["name"] == "vote" for e in events)


def test_a_compiled_plan_runs_too(fake, tmp_path):
    plan = tmp_path / "plan.json"
    assert runner.invoke(app, ["compile", "specs/best_of_n.yaml", "-o", str(plan)]).exit_code == 0
    result = runner.invoke(app, ["run", str(plan), "-i", "question=hi"])
    assert result.exit_code == 0, result.output
    assert "answer:" in result.stdout and "score:" in result.stdout


def test_batch_mode_runs_every_line_through_one_engine(fake, tmp_path):
    rows = tmp_path / "in.jsonl"
    rows.write_text('{"question": "a"}\n\n{"question": "b"}\n{"question": 3}\n')
    result = runner.invoke(app, ["run", "specs/best_of_n.yaml", "--inputs", str(rows)])
    assert result.exit_code == 1  # the third line's input is not a string
    assert "input 3: input 'question' must be string" in result.stderr
    rows.write_text('{"question": "a"}\n{"question": "b"}\n')
    result = runner.invoke(app, ["run", "specs/best_of_n.yaml", "--inputs", str(rows), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["input"] for line in lines] == [1, 2]
    assert len(fake) == 1 and len(fake[0].requests) == 2 * 8


def test_typed_inputs_are_read_as_json(fake):
    result = runner.invoke(
        app, ["run", "specs/map_reduce.yaml", "-i", "question=q", "-i", 'chunks=["x", "y"]']
    )
    assert result.exit_code == 0, result.output
    assert "notes: 2" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["specs/self_consistency.yaml"],
            "missing input 'question' (string); pass --input question=...",
        ),
        (["specs/self_consistency.yaml", "-i", "question"], "expected NAME=VALUE"),
        (["specs/self_consistency.yaml", "-i", "=x"], "--input '=x': expected NAME=VALUE"),
        (["specs/self_consistency.yaml", "-i", "q=1"], "unknown input(s) q"),
        (
            ["specs/map_reduce.yaml", "-i", "question=q", "-i", "chunks=a,b"],
            "is not a list[string]",
        ),
        (["specs/nope.yaml", "-i", "q=1"], "nope.yaml"),
        (["specs/best_of_n.yaml", "--inputs", "missing.jsonl"], "cannot read inputs"),
        (["tests", "-i", "q=1"], "cannot read spec"),
        (
            ["specs/best_of_n.yaml", "-i", "question=q", "--policy", "mru"],
            "unknown eviction policy",
        ),
        (
            ["specs/map_reduce.yaml", "-i", "question=q", "-i", "chunks=" + "[" * 5000],
            "--input chunks: it nests too deeply",
        ),
        (
            ["specs/map_reduce.yaml", "-i", "question=q", "-i", f"chunks=[{'9' * 5000}]"],
            "--input chunks: a number is too large",
        ),
    ],
)
def test_bad_run_invocations_are_one_clear_line(fake, args, message):
    result = runner.invoke(app, ["run", *args])
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_bad_json_in_an_inputs_file_or_a_plan_is_one_clear_line(fake, tmp_path):
    rows = tmp_path / "in.json"
    for text, message in (
        ("[" * 100_000, "not JSON: it nests too deeply"),
        ('{"question": ' + "9" * 5000 + "}", "not JSON: a number is too large"),
        # JSON lines in a file not named .jsonl: say how to run them.
        ('{"question": "a"}\n{"question": "b"}\n', "for one run per line, name the file .jsonl"),
    ):
        rows.write_text(text)
        result = runner.invoke(app, ["run", "specs/best_of_n.yaml", "--inputs", str(rows)])
        assert result.exit_code == 1 and message in result.stderr, result.output
    # A line of a JSON lines file: the line in the name, the column in the message.
    lines = tmp_path / "in.jsonl"
    lines.write_text('{"question": "a"}\n{"question": b}\n')
    result = runner.invoke(app, ["run", "specs/best_of_n.yaml", "--inputs", str(lines)])
    assert f"{lines}:2: not JSON: Expecting value at column 14" in result.stderr, result.output
    plan = tmp_path / "plan.json"
    assert runner.invoke(app, ["compile", "specs/best_of_n.yaml", "-o", str(plan)]).exit_code == 0
    good = plan.read_text()
    contribution = json.loads(good)["priorities"]["agents"]["writer"]["contribution"]
    edited = tmp_path / "edited.json"
    for text, message in (
        (good.replace(f'"contribution": {contribution}', '"contribution": NaN', 1), "NaN"),
        ('{"format": "hive-plan", "version": ' + "9" * 5000 + "}", "plan is not valid JSON"),
        ('{"format": ' + "[" * 100_000, "nests too deeply"),
    ):
        assert text != good
        edited.write_text(text)
        result = runner.invoke(app, ["run", str(edited), "-i", "question=hi"])
        assert result.exit_code == 1 and message in result.stderr, result.output
        assert "Traceback" not in result.output


def test_a_failing_call_exits_non_zero_and_still_writes_the_trace(monkeypatch, tmp_path):
    from hive.runtime.engine.errors import InvalidRequestError

    too_long = InvalidRequestError("prompt has 9000 tokens; the context holds 8192")
    monkeypatch.setattr(
        run_module, "make_engine", lambda model, **o: FakeEngine(lambda *_: too_long)
    )
    trace = tmp_path / "t.json"
    result = runner.invoke(app, ["run", "specs/refine.yaml", "-i", "task=x", "--trace", str(trace)])
    assert result.exit_code == 1
    assert "agent 'writer'" in result.stderr and "context holds 8192" in result.stderr
    events = json.loads(trace.read_text())["traceEvents"]
    assert any(e["ph"] == "X" and "error" in e["args"] for e in events)


DRIVER = """
import signal
import sys
# As on a terminal: a shell runs background jobs with SIGINT ignored, which Python keeps.
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {tests!r})
from fake_engine import FakeEngine
from hive.runtime import run as run_module
from pathlib import Path
submitted = Path({trace!r} + ".submitted")
def slow(*_):
    submitted.touch()  # the test interrupts once calls are in flight
    return 30.0
run_module.make_engine = lambda model, **o: FakeEngine(lambda *_: "Answer: 1", delay=slow)
from hive.cli import main
sys.argv = ["hive", "run", "specs/self_consistency.yaml", "-i", "question=q", "--trace", {trace!r}]
main()
"""


def test_ctrl_c_stops_promptly_and_writes_the_partial_trace(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    trace = tmp_path / "partial.json"
    script = DRIVER.format(tests=str(Path(__file__).parent), trace=str(trace))
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    # Interrupt once the samples are submitted (not after a fixed sleep: first imports
    # on a fresh machine are slow).
    submitted = Path(str(trace) + ".submitted")
    deadline = time.monotonic() + 120
    while not submitted.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert submitted.exists(), "the run never submitted a call"
    time.sleep(0.3)  # the other samples of the vote join the first
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    _, stderr = proc.communicate(timeout=20)
    assert time.monotonic() - started < 5
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    events = json.loads(trace.read_text())["traceEvents"]
    unfinished = [
        e for e in events if e["ph"] == "X" and e["args"]["finish_reason"] == "unfinished"
    ]
    assert len(unfinished) == 8


def test_the_status_line_counts_calls_tokens_and_cache_hits():
    from hive.runtime.progress import status_line
    from hive.runtime.trace import Trace

    trace = Trace()
    done = trace.begin_call("a", "1/0", 5)
    done.completion_tokens, done.prompt_tokens, done.cached_prompt_tokens = 20, 50, 30
    trace.end_call(done)
    trace.begin_call("b", "2/0", 6)
    line = status_line([trace], 2.0, {"num_steps": 7}).plain
    assert line.startswith("calls 1 done, 1 running | 20 tokens (10/s) | prefix cache 30/50")
    assert line.endswith("engine steps 7")


def test_an_unknown_model_is_one_clear_line_before_any_call():
    result = runner.invoke(
        app, ["run", "specs/best_of_n.yaml", "-i", "question=q", "--model", "/no/such/model"]
    )
    assert result.exit_code == 1
    assert "/no/such/model" in result.stderr and "Traceback" not in result.output


def test_an_unreadable_json_spec_is_a_clean_error(fake, tmp_path):
    folder = tmp_path / "plan.json"
    folder.mkdir()
    binary = tmp_path / "bad.json"
    binary.write_bytes(b"\xff\xfe{")
    for path in (folder, binary):
        result = runner.invoke(app, ["run", str(path)])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert path.name in result.stderr
