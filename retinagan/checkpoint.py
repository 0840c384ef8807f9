"""Checkpoint folders: model.safetensors + config.json, written atomically.

config.json holds the format version, the model kind and config (enough to rebuild the
model), and what the model was trained on, for how long, and how it scored. Nothing is
ever unpickled.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from retinagan.errors import CheckpointError
from retinagan.models.registry import build_model

FORMAT_VERSION = 1
WEIGHTS, CONFIG = "model.safetensors", "config.json"


def save_model(
    folder: str | os.PathLike,
    model: torch.nn.Module,
    kind: str,
    *,
    half: bool = False,
    **info: Any,
) -> Path:
    """Write model weights and config.json into folder, replacing it atomically.

    info goes into config.json as is (training data, steps, wall time, metrics, ...).
    """
    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    config = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "model_config": dataclasses.asdict(model.config),
        "dtype": "float16" if half else "float32",
        **info,
    }
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    save_file(state, str(staging / WEIGHTS))
    (staging / CONFIG).write_text(json.dumps(config, indent=2, default=_jsonable) + "\n")
    _replace_dir(staging, folder)
    return folder


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to config.json")


def _replace_dir(staging: Path, folder: Path) -> None:
    """Swap staging in for folder; a crash leaves either the old or the new folder whole."""
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
        os.replace(staging, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, folder)


def read_config(folder: str | os.PathLike, expected_kind: str | tuple[str, ...] | None = None) -> dict:
    """Read and check config.json; raises CheckpointError with a one-line reason."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint {folder}: folder not found")
    path = folder / CONFIG
    if not path.is_file():
        raise CheckpointError(f"checkpoint {folder}: no {CONFIG} (not a retinagan checkpoint)")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint {folder}: {CONFIG} is damaged ({exc})") from None
    if not isinstance(config, dict) or "kind" not in config or "format_version" not in config:
        raise CheckpointError(f"checkpoint {folder}: {CONFIG} lacks 'kind' or 'format_version'")
    version = config["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {folder}: format version {version} is newer than this retinagan reads "
            f"({FORMAT_VERSION}); upgrade retinagan"
        )
    if isinstance(expected_kind, str):
        expected_kind = (expected_kind,)
    if expected_kind and config["kind"] not in expected_kind:
        raise CheckpointError(
            f"checkpoint {folder}: holds a {config['kind']!r} model, expected {' or '.join(map(repr, expected_kind))}"
        )
    return config


def stored_info(config: dict) -> dict:
    """The free-form part of a config.json (training data, steps, metrics ...), to pass back to save_model."""
    return {k: v for k, v in config.items() if k not in ("format_version", "kind", "model_config", "dtype")}


def load_model(
    folder: str | os.PathLike,
    expected_kind: str | tuple[str, ...] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model from config.json and load its weights (as float32) in eval mode."""
    folder = Path(folder)
    config = read_config(folder, expected_kind)
    model = build_model(config["kind"], config.get("model_config", {}))
    path = folder / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"checkpoint {folder}: no {WEIGHTS}")
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {folder}: {WEIGHTS} is damaged or truncated ({exc})") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint {folder}: weights do not fit the stored config ({first})") from None
    return model.to(device).eval(), config
