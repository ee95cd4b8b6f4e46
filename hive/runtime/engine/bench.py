"""`hive bench engine`: the same workloads on Hive and on transformers, in one run.

Workloads: (a) one prompt, N samples; (b) many prompts sharing a long
system prompt; (c) single-stream decode. Peers: transformers `generate`
(padded static batch) and, when it runs here, its continuous-batching
`generate_batch`, both in the benchmark's dtype; with a half-precision dtype,
transformers `generate` in float32 too, so the ratio is against the best
transformers mode on this machine. Every run generates exactly the asked number of tokens
(eos ignored) so the work is equal.
"""

from __future__ import annotations

import copy
import os
import platform
import time
from dataclasses import dataclass
from typing import Any

import torch

from hive.runtime.engine.engine import Engine
from hive.runtime.engine.host_memory import keep_freed_memory
from hive.runtime.engine.sampling_params import SamplingParams

SYSTEM_RULES = (
    "You are Hive's support assistant. Answer briefly and precisely. Rule {i}: when a user "
    "asks about topic number {i}, cite the relevant section, explain the reasoning step by "
    "step, and never invent facts you cannot verify. "
)
QUESTIONS = [
    "How do I reset my password?",
    "What is the refund policy?",
    "Explain rate limits.",
    "How do I export my data?",
    "Which regions are supported?",
    "How do I add a teammate?",
    "What does error 42 mean?",
    "How is usage billed?",
    "Can I change my username?",
    "How do I enable two-factor authentication?",
    "Where are the logs kept?",
    "How do I delete a project?",
    "What is the uptime guarantee?",
    "How do I rotate keys?",
    "Is there an API for reports?",
    "How do I contact sales?",
]


PEERS = ("hf_generate", "hf_generate_batch", "hf_generate_float32")
PEER_NAMES = {
    "hf_generate": "generate",
    "hf_generate_batch": "generate_batch",
    "hf_generate_float32": "generate float32",
}


@dataclass(frozen=True)
class Workload:
    name: str
    prompts: list[list[int]]
    n: int
    max_new_tokens: int
    temperature: float

    @property
    def num_new_tokens(self) -> int:
        return len(self.prompts) * self.n * self.max_new_tokens


def chat_ids(tokenizer: Any, user: str, system: str | None = None) -> list[int]:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}
    ]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def system_prompt(tokenizer: Any, num_tokens: int) -> str:
    text, i = "", 0
    while len(tokenizer(text)["input_ids"]) < num_tokens:
        text += SYSTEM_RULES.format(i=i)
        i += 1
    ids = tokenizer(text)["input_ids"][:num_tokens]
    return tokenizer.decode(ids)


def build_workloads(tokenizer: Any, quick: bool) -> list[Workload]:
    story = chat_ids(tokenizer, "Write a short story about a robot who learns to paint.")
    system = system_prompt(tokenizer, 300)
    num_shared = 8 if quick else 32
    shared = [
        chat_ids(tokenizer, f"{QUESTIONS[i % len(QUESTIONS)]} (ticket {i})", system)
        for i in range(num_shared)
    ]
    single = chat_ids(tokenizer, "Explain how a bicycle works.")
    return [
        Workload("a_one_prompt_n_samples", [story], 4 if quick else 16, 32 if quick else 128, 0.8),
        Workload("b_shared_system_prompt", shared, 1, 16 if quick else 64, 0.0),
        Workload("c_single_stream_decode", [single], 1, 64 if quick else 256, 0.0),
    ]


def run_hive(engine: Engine, w: Workload) -> dict[str, float]:
    engine.cache.evict(10**9)  # a cold cache: only sharing inside the workload counts
    params = SamplingParams(
        n=w.n, max_tokens=w.max_new_tokens, temperature=w.temperature, seed=0, ignore_eos=True
    )
    before = engine.stats()
    start = time.perf_counter()
    outs = engine.generate(w.prompts, params)
    seconds = time.perf_counter() - start
    after = engine.stats()
    assert sum(len(o.token_ids) for o in outs) == w.num_new_tokens
    steps = after["num_steps"] - before["num_steps"]
    return {
        "seconds": seconds,
        "steps": steps,
        "prefill_tokens": after["num_prefill_tokens"] - before["num_prefill_tokens"],
        "prefix_hit_tokens": after["num_prefix_hit_tokens"] - before["num_prefix_hit_tokens"],
    }


def run_hf_generate(hf: Any, tokenizer: Any, w: Workload) -> dict[str, float]:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    width = max(len(p) for p in w.prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in w.prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in w.prompts])
    kwargs: dict[str, Any] = {"do_sample": w.temperature > 0}
    if w.temperature > 0:
        kwargs.update(temperature=w.temperature, top_k=0, top_p=1.0)
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.inference_mode():
        out = hf.generate(
            ids,
            attention_mask=mask,
            max_new_tokens=w.max_new_tokens,
            min_new_tokens=w.max_new_tokens,
            num_return_sequences=w.n,
            pad_token_id=pad,
            **kwargs,
        )
    seconds = time.perf_counter() - start
    assert out.shape[0] * (out.shape[1] - width) == w.num_new_tokens
    return {"seconds": seconds}


def run_hf_generate_batch(hf: Any, w: Workload) -> dict[str, Any]:
    from transformers import GenerationConfig

    config = GenerationConfig(
        max_new_tokens=w.max_new_tokens,
        min_new_tokens=w.max_new_tokens,
        do_sample=w.temperature > 0,
        temperature=w.temperature or 1.0,
        top_k=0,
        top_p=1.0,
        num_return_sequences=w.n,
        eos_token_id=None,
    )
    start = time.perf_counter()
    try:  # not under inference_mode: its worker thread updates tensors made here
        results = hf.generate_batch(
            inputs=w.prompts, generation_config=config, progress_bar=False, warmup=False
        )
    except Exception as exc:  # the peer may not run on this machine; report why
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    seconds = time.perf_counter() - start
    produced = sum(len(r.generated_tokens) for r in results.values())
    if produced != w.num_new_tokens:
        return {"error": f"produced {produced} tokens, expected {w.num_new_tokens}"}
    return {"seconds": seconds}


def copy_bandwidth_gbps(num_bytes: int = 512 * 2**20, repeats: int = 5) -> float:
    """Memory bandwidth of a large tensor copy, counting bytes read plus written."""
    src = torch.ones(num_bytes // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = min(_timed(lambda: dst.copy_(src)) for _ in range(repeats))
    return 2 * num_bytes / best / 1e9


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def machine() -> str:
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    bf16 = "native bf16" if cpu_has_fast_bfloat16() else "no native bf16 (no AMX / AVX512-BF16)"
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs ({bf16}), {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, {gpu} (the engine runs on the CPU)"
    )


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median time, plus every run's seconds."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    median = dict(ordered[(len(ordered) - 1) // 2])
    median["all_seconds"] = [r["seconds"] for r in runs]
    return median


def cpu_has_fast_bfloat16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AMX or AVX512-BF16); without
    either, bf16 GEMMs are emulated and slower than float32."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


def run_bench(
    model: str | None = None, quick: bool = False, dtype: str = "auto", repeat: int = 1
) -> dict[str, Any]:
    """Both engines run in `dtype`; "auto" is bfloat16 where the CPU has native bf16
    (AMX / AVX512-BF16), float32 elsewhere."""
    from hive.runtime.engine.model_loader import load_hf_model, resolve_model

    if dtype == "auto":
        dtype = "bfloat16" if cpu_has_fast_bfloat16() else "float32"
    allocator_tuned = keep_freed_memory()  # process-wide: both engines run with it
    hf, tokenizer = load_hf_model(resolve_model(model))
    hf.eval()
    hf_float32 = None
    if dtype != "float32":
        # transformers' float32 mode stays a peer: the ratio is against its best mode.
        hf_float32 = hf
        hf = copy.deepcopy(hf).to(getattr(torch, dtype))
    engine = Engine.from_hf(hf, tokenizer, kv_cache_tokens=32768, dtype=dtype)
    workloads = build_workloads(tokenizer, quick)
    engine.generate([workloads[2].prompts[0]], SamplingParams(max_tokens=4))  # warm up
    results: dict[str, Any] = {
        "machine": machine(),
        "quick": quick,
        "dtype": dtype,
        "allocator_tuned": allocator_tuned,
        "float32_kernel": engine.float32_kernel,
        "repeat": repeat,
        "load_average_before": os.getloadavg(),
        "workloads": {},
    }
    for w in workloads:
        row: dict[str, Any] = {
            "prompts": len(w.prompts),
            "n": w.n,
            "new_tokens_each": w.max_new_tokens,
            "prompt_tokens": [len(p) for p in w.prompts][:1],
        }
        # Hive and transformers generate alternate, `repeat` times each, and the medians
        # are compared (the machine may be shared: one run each is within its noise).
        # generate_batch runs once: it is several times slower than generate here.
        hive_runs, generate_runs, float32_runs = [], [], []
        for _ in range(repeat):
            hive_runs.append(run_hive(engine, w))
            generate_runs.append(run_hf_generate(hf, tokenizer, w))
            if hf_float32 is not None:
                float32_runs.append(run_hf_generate(hf_float32, tokenizer, w))
        row["hive"] = _median_run(hive_runs)
        row["hf_generate"] = _median_run(generate_runs)
        row["hf_generate_batch"] = run_hf_generate_batch(hf, w)
        if hf_float32 is not None:
            row["hf_generate_float32"] = _median_run(float32_runs)
        peers = [k for k in PEERS if k in row and "seconds" in row[k]]
        best = min(peers, key=lambda k: row[k]["seconds"])
        row["best_hf"] = best
        row["speedup_vs_best_hf"] = row[best]["seconds"] / row["hive"]["seconds"]
        for key in ("hive", *PEERS):
            if key in row and "seconds" in row[key]:
                row[key]["tokens_per_s"] = w.num_new_tokens / row[key]["seconds"]
        results["workloads"][w.name] = row
    single = results["workloads"]["c_single_stream_decode"]["hive"]
    bandwidth = copy_bandwidth_gbps()
    weight_bytes = engine.model.weight_bytes()
    results["decode"] = {
        "step_ms": 1000 * single["seconds"] / single["steps"],
        "weight_mb": weight_bytes / 2**20,
        "copy_bandwidth_gbps": bandwidth,
        "floor_ms": 1000 * weight_bytes / (bandwidth * 1e9),
    }
    results["load_average_after"] = os.getloadavg()
    return results


def format_report(results: dict[str, Any]) -> str:
    lines = [
        f"machine: {results['machine']}; dtype {results['dtype']}"
        + (
            f" (CPU float32 GEMM: {results['float32_kernel']})"
            if results["dtype"] == "float32"
            else ""
        )
        + ("; quick" if results["quick"] else "")
        + (f"; median of {results['repeat']} runs" if results.get("repeat", 1) > 1 else "")
        + f"; load average before/after: {results['load_average_before'][0]:.2f}"
        + f"/{results['load_average_after'][0]:.2f}"
    ]
    if not results.get("allocator_tuned", True):
        lines.append("(glibc malloc not tuned here: CPU steps may spend time faulting in pages)")
    header = (
        f"{'workload':26} {'hive s':>8} {'generate s':>11} {'gen_batch s':>12}"
        f" {'gen f32 s':>10} {'vs best transformers':>21}"
    )
    lines.append(header)
    for name, row in results["workloads"].items():
        cells = []
        for key in PEERS:
            peer = row.get(key, {})
            cells.append(f"{peer['seconds']:.2f}" if "seconds" in peer else "n/a")
        lines.append(
            f"{name:26} {row['hive']['seconds']:8.2f} {cells[0]:>11} {cells[1]:>12} {cells[2]:>10}"
            f" {row['speedup_vs_best_hf']:7.2f}x ({PEER_NAMES[row['best_hf']]})"
        )
        if "error" in row["hf_generate_batch"]:
            lines.append(f"  generate_batch unavailable: {row['hf_generate_batch']['error']}")
    d = results["decode"]
    lines.append(
        f"decode step {d['step_ms']:.1f} ms; bandwidth floor {d['floor_ms']:.1f} ms "
        f"({d['weight_mb']:.0f} MiB weights / {d['copy_bandwidth_gbps']:.1f} GB/s copy)"
    )
    return "\n".join(lines)
