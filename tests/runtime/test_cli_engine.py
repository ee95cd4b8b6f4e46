"""`hive generate` and `hive bench engine`: thin commands, clean errors."""

import pytest
from typer.testing import CliRunner

from hive.cli import app

runner = CliRunner()


def test_generate_unknown_model_is_a_clean_error():
    result = runner.invoke(app, ["generate", "--model", "no-such-model-xyz", "hi"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot load model")
    assert "Traceback" not in result.output


def test_generate_bad_params_is_a_clean_error():
    result = runner.invoke(app, ["generate", "--max-tokens", "0", "hi"])
    assert result.exit_code == 1
    assert "error: max_tokens must be >= 1" in result.stderr


def test_bench_engine_unknown_model_is_a_clean_error():
    result = runner.invoke(app, ["bench", "engine", "--model", "no-such-model-xyz"])
    assert result.exit_code == 1 and result.stderr.startswith("error: ")


@pytest.mark.model
def test_generate_with_the_default_model():
    result = runner.invoke(
        app,
        ["generate", "--temperature", "0", "--max-tokens", "12", "What is the capital of France?"],
    )
    assert result.exit_code == 0, result.output
    assert "Paris" in result.stdout


@pytest.mark.model
def test_generate_n_samples():
    result = runner.invoke(app, ["generate", "--n", "2", "--seed", "1", "--max-tokens", "4", "Hi"])
    assert result.exit_code == 0, result.output
    assert "--- sample 0" in result.stdout and "--- sample 1" in result.stdout
