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


def test_generate_bad_dtype_is_a_clean_error():
    result = runner.invoke(app, ["generate", "--dtype", "int3", "hi"])
    assert result.exit_code == 1
    assert "dtype must be float32, bfloat16 or float16" in result.stderr


@pytest.mark.model
def test_generate_in_bfloat16_with_the_default_model():
    result = runner.invoke(
        app,
        [
            "generate",
            "--dtype",
            "bfloat16",
            "--temperature",
            "0",
            "--max-tokens",
            "12",
            "What is the capital of France?",
        ],
    )
    assert result.exit_code == 0, result.output
    # Which words: this small model's first token here is a near tie (0.08 nats in
    # float32) that bf16 rounding may flip; accuracy is tested on logits instead.
    assert len(result.stdout.split()) >= 3, result.stdout


def test_bench_report_names_the_best_transformers_mode():
    from hive.runtime.engine.bench import format_report

    row = {
        "hive": {"seconds": 2.0},
        "hf_generate": {"seconds": 5.0},
        "hf_generate_batch": {"error": "RuntimeError: no"},
        "hf_generate_float32": {"seconds": 4.0},
        "best_hf": "hf_generate_float32",
        "speedup_vs_best_hf": 2.0,
    }
    results = {
        "machine": "test",
        "quick": True,
        "dtype": "bfloat16",
        "allocator_tuned": True,
        "load_average_before": (0.5, 0, 0),
        "load_average_after": (0.7, 0, 0),
        "workloads": {"a_one_prompt_n_samples": row},
        "decode": {"step_ms": 20.0, "floor_ms": 10.0, "weight_mb": 257, "copy_bandwidth_gbps": 27},
    }
    text = format_report(results)
    assert "2.00x (generate float32)" in text
    assert "generate_batch unavailable: RuntimeError: no" in text
    assert "n/a" in text
    assert "float32 GEMM" not in text  # a bf16 run
    text = format_report({**results, "dtype": "float32", "float32_kernel": "onednn"})
    assert "dtype float32 (CPU float32 GEMM: onednn)" in text


def test_bench_engine_bad_repeat_is_a_clean_error():
    result = runner.invoke(app, ["bench", "engine", "--repeat", "0"])
    assert result.exit_code == 1 and "--repeat must be >= 1" in result.stderr


def test_bench_median_run_keeps_every_time():
    from hive.runtime.engine.bench import _median_run

    runs = [
        {"seconds": 3.0, "steps": 1},
        {"seconds": 1.0, "steps": 2},
        {"seconds": 2.0, "steps": 3},
    ]
    assert _median_run(runs) == {"seconds": 2.0, "steps": 3, "all_seconds": [3.0, 1.0, 2.0]}


def test_bench_auto_dtype_follows_the_cpu(monkeypatch):
    from hive.runtime.engine import bench

    monkeypatch.setattr(bench, "cpu_has_fast_bfloat16", lambda: False)
    assert "no native bf16" in bench.machine()
    result = runner.invoke(app, ["bench", "engine", "--dtype", "int8"])
    assert result.exit_code == 1 and "--dtype must be auto, float32 or bfloat16" in result.stderr


def test_generate_bad_draft_tokens_is_a_clean_error():
    result = runner.invoke(app, ["generate", "--draft-tokens", "-1", "hi"])
    assert result.exit_code == 2
    assert "Invalid value for '--draft-tokens'" in result.output
    assert "Traceback" not in result.output


def test_generate_passes_draft_tokens_to_the_engine(monkeypatch):
    from hive.runtime.engine import cli_support
    from hive.runtime.engine.errors import EngineError

    seen = {}

    def from_pretrained(model, **options):
        seen.update(options)
        raise EngineError("stopped before loading")

    monkeypatch.setattr(cli_support.Engine, "from_pretrained", from_pretrained)
    result = runner.invoke(app, ["generate", "--draft-tokens", "2", "hi"])
    assert result.exit_code == 1 and "stopped before loading" in result.stderr
    assert seen["draft_tokens"] == 2
