"""`hive validate` and `hive compile` on bad specs: located messages, exit 1, no traceback."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from hive.cli import app

from .conftest import ROOT

runner = CliRunner()
GOOD = ROOT / "specs" / "best_of_n.yaml"
BAD = """\
hive: 1
name: t
inputs:
  question: string
agents:
  solver:
    prompt: "Q: {{ question }}"
flow: |
  r = slover(question)
  return r
"""


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def assert_clean_failure(result) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_validate_bad_spec_prints_location(tmp_path):
    bad = write(tmp_path, "bad.yaml", BAD)
    result = runner.invoke(app, ["validate", str(bad)])
    assert_clean_failure(result)
    assert f"{bad}:9:7: error: unknown agent 'slover' (did you mean 'solver'?)" in result.stderr
    assert "  r = slover(question)" in result.stderr
    assert "      ^" in result.stderr  # the caret under the 's' of 'slover'


def test_validate_github_format(tmp_path):
    bad = write(tmp_path, "bad.yaml", BAD)
    result = runner.invoke(app, ["validate", "--format", "github", str(bad)])
    assert_clean_failure(result)
    line = f"::error file={bad},line=9,col=7::unknown agent 'slover' (did you mean 'solver'?)"
    assert line in result.stdout.splitlines()


def test_validate_github_format_escapes_newlines(tmp_path):
    bad = write(tmp_path, "bad.yaml", "hive: 1\nname: [\n")
    result = runner.invoke(app, ["validate", "--format", "github", str(bad)])
    assert_clean_failure(result)
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("::error")]
    assert re.match(rf"::error file={re.escape(str(bad))},line=\d+,col=\d+::invalid YAML: ", line)


def test_validate_mixed_valid_and_invalid(tmp_path):
    bad = write(tmp_path, "bad.yaml", BAD)
    broken = write(tmp_path, "broken.yaml", "hive: 1\n  name: t\n")
    result = runner.invoke(app, ["validate", str(GOOD), str(bad), str(broken)])
    assert_clean_failure(result)
    assert f"ok {GOOD}" in result.stdout
    assert f"{bad}:9:7: error:" in result.stderr
    assert f"{broken}:2:7: error: invalid YAML" in result.stderr
    assert "1 valid, 2 invalid" in result.stdout


def test_validate_all_valid(tmp_path):
    other = ROOT / "specs" / "refine.yaml"
    result = runner.invoke(app, ["validate", str(GOOD), str(other)])
    assert result.exit_code == 0, result.output
    assert "2 valid, 0 invalid" in result.stdout


def test_validate_prints_warnings_and_passes(tmp_path):
    text = BAD.replace("slover", "solver").replace(
        "  solver:\n", "  spare:\n    prompt: hi\n  solver:\n"
    )
    spec = write(tmp_path, "warn.yaml", text)
    result = runner.invoke(app, ["validate", str(spec)])
    assert result.exit_code == 0, result.output
    assert f"{spec}:6:3: warning: agent 'spare' is never called" in result.stderr
    github = runner.invoke(app, ["validate", "--format", "github", str(spec)])
    assert github.exit_code == 0
    assert f"::warning file={spec},line=6,col=3::agent 'spare' is never called" in github.stdout


def test_validate_nonexistent_file(tmp_path):
    missing = tmp_path / "missing.yaml"
    result = runner.invoke(app, ["validate", str(missing)])
    assert_clean_failure(result)
    assert f"{missing}:1:1: error: cannot read spec" in result.stderr


def test_validate_directory_is_not_a_spec(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert_clean_failure(result)
    assert f"{tmp_path}:1:1: error: cannot read spec" in result.stderr


def test_validate_binary_and_json_files(tmp_path):
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    bad_json = write(tmp_path, "bad.json", '{"hive": 1,\n  "name": }')
    result = runner.invoke(app, ["validate", str(binary), str(bad_json)])
    assert_clean_failure(result)
    assert f"{binary}:1:1: error: spec is not UTF-8 text" in result.stderr
    assert f"{bad_json}:2:11: error: invalid JSON: Expecting value" in result.stderr


def test_compile_bad_spec_exits_1_without_traceback(tmp_path):
    bad = write(tmp_path, "bad.yaml", BAD)
    out = tmp_path / "plan.json"
    result = runner.invoke(app, ["compile", str(bad), "-o", str(out)])
    assert_clean_failure(result)
    assert f"{bad}:9:7: error: unknown agent 'slover'" in result.stderr
    assert not out.exists()


def test_compile_nonexistent_file(tmp_path):
    result = runner.invoke(app, ["compile", str(tmp_path / "nope.yaml")])
    assert_clean_failure(result)
    assert "nope.yaml:1:1: error: cannot read spec" in result.stderr


def test_compile_flow_syntax_error(tmp_path):
    bad = write(tmp_path, "bad.yaml", BAD.replace("r = slover(question)", "r = solver(question"))
    result = runner.invoke(app, ["compile", str(bad), "--emit", "ir"])
    assert_clean_failure(result)
    assert f"{bad}:10:3: error: unexpected 'return'" in result.stderr


def test_compile_to_unwritable_path(tmp_path):
    out = tmp_path / "no" / "such" / "dir" / "plan.json"
    result = runner.invoke(app, ["compile", str(GOOD), "-o", str(out)])
    assert_clean_failure(result)
    assert f"error: cannot write {out}" in result.stderr
