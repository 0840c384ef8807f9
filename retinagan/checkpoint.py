"""Checkpoint folders: model.safetensors + config.json, written atomically.

config.json holds the format version, the model kind and config (enough to rebuild the
model), and what the model was trained on, for how long, and how it scored. Nothing is
ever unpickled.

A checkpoint may be stored as its differences from another one (save_model(base=...)):
model.safetensors then holds only the tensors that differ, and config.json's "base" names
the other folder (a path relative to this one) and the sha256 of its weights; load_model
reads the base, checks the hash and lays the stored tensors over it. That is how a model
fine-tuned in a few layers (the end-to-end pair, which changes the shipped AAE's decoder
and the translator's finer levels) ships in a few MB.
"""
from __future__ import annotations

import dataclasses
import hashlib
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
PAIRED_TRANSLATOR = "translator"  # a vessel model's own translator (an end-to-end pair): this subfolder of its folder


def save_model(
    folder: str | os.PathLike,
    model: torch.nn.Module,
    kind: str,
    *,
    half: bool = False,
    base: str | os.PathLike | None = None,
    **info: Any,
) -> Path:
    """Write model weights and config.json into folder, replacing it atomically.

    info goes into config.json as is (training data, steps, wall time, metrics, ...).
    base: a checkpoint of the same kind to store the differences from: only the tensors
    that differ from base's stored ones (after the float16 cast with half) are written.
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
    if base is not None:
        base = Path(base)
        base_config = read_config(base, kind)
        if "base" in base_config:
            raise CheckpointError(f"checkpoint {base}: is itself stored as differences; pick the checkpoint it was made from")
        base_state = _read_weights(base)
        total = len(state)
        state = {k: v for k, v in state.items() if not _same(v, base_state.get(k))}
        config["base"] = {
            "checkpoint": os.path.relpath(base.resolve(), folder.resolve()),
            "sha256": file_sha256(base / WEIGHTS),
            "stored_tensors": len(state),
            "tensors": total,
            "stored_parameters": sum(v.numel() for v in state.values()),
        }
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; a checkpoint is meant to be shared
    save_file(state, str(staging / WEIGHTS))
    (staging / CONFIG).write_text(_config_text(config))
    _replace_dir(staging, folder)
    return folder


def _same(tensor: torch.Tensor, other: torch.Tensor | None) -> bool:
    return other is not None and other.dtype == tensor.dtype and other.shape == tensor.shape and torch.equal(other, tensor)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _config_text(config: dict) -> str:
    return json.dumps(config, indent=2, default=_jsonable) + "\n"


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
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f"checkpoint {folder}: {CONFIG} is damaged ({exc})") from None
    if not isinstance(config, dict) or "kind" not in config or "format_version" not in config:
        raise CheckpointError(f"checkpoint {folder}: {CONFIG} lacks 'kind' or 'format_version'")
    version = config["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"checkpoint {folder}: {CONFIG} has an invalid format_version {version!r}")
    if not isinstance(config["kind"], str):
        raise CheckpointError(f"checkpoint {folder}: {CONFIG} has an invalid kind {config['kind']!r}")
    if not isinstance(config.get("model_config", {}), dict):
        raise CheckpointError(f"checkpoint {folder}: {CONFIG} has a model_config that is not a JSON object")
    if version > FORMAT_VERSION:
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


def update_metrics(folder: str | os.PathLike, metrics: dict) -> dict:
    """Merge metrics into a checkpoint's config.json (atomic rewrite); returns the new config."""
    folder = Path(folder)
    config = read_config(folder)
    config["metrics"] = {**config.get("metrics", {}), **metrics}
    tmp = folder / f".{CONFIG}.tmp"
    tmp.write_text(_config_text(config))
    os.replace(tmp, folder / CONFIG)
    return config


def stored_info(config: dict) -> dict:
    """The free-form part of a config.json (training data, steps, metrics ...), to pass back to save_model."""
    return {k: v for k, v in config.items() if k not in ("format_version", "kind", "model_config", "dtype", "base")}


def load_model(
    folder: str | os.PathLike,
    expected_kind: str | tuple[str, ...] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model from config.json and load its weights (as float32) in eval mode."""
    folder = Path(folder)
    config = read_config(folder, expected_kind)
    state = _read_weights(folder)
    weights_bytes = (folder / WEIGHTS).stat().st_size
    if "base" in config:
        base = base_folder(folder, config)
        state = {**_read_weights(base), **state}
        weights_bytes += (base / WEIGHTS).stat().st_size
    model = _build_checked(folder, config, weights_bytes)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint {folder}: weights do not fit the stored config ({first})") from None
    return model.to(device).eval(), config


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    path = folder / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"checkpoint {folder}: no {WEIGHTS}")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {folder}: {WEIGHTS} is damaged or truncated ({exc})") from None


def base_folder(folder: Path, config: dict) -> Path:
    """The checkpoint a differences-only checkpoint is laid over, checked: there, of the same
    kind, not itself a differences-only one, and with the very weights it was made from."""
    base = config["base"]
    if not isinstance(base, dict) or not isinstance(base.get("checkpoint"), str) or not isinstance(base.get("sha256"), str):
        raise CheckpointError(f"checkpoint {folder}: {CONFIG} has an invalid 'base' (expected checkpoint and sha256)")
    path = Path(os.path.normpath(folder / base["checkpoint"]))
    if not (path / CONFIG).is_file():
        raise CheckpointError(
            f"checkpoint {folder}: stores only its differences from {base['checkpoint']}, which is not there ({path}); "
            "keep both folders where they were shipped (checkpoints/)"
        )
    base_config = read_config(path, config["kind"])
    if "base" in base_config:
        raise CheckpointError(f"checkpoint {folder}: its base {path} is itself stored as differences (one level only)")
    if not (path / WEIGHTS).is_file():
        raise CheckpointError(f"checkpoint {folder}: its base {path} has no {WEIGHTS}")
    if file_sha256(path / WEIGHTS) != base["sha256"]:
        raise CheckpointError(
            f"checkpoint {folder}: its base {path} has other weights than the ones it was made from (sha256 differs); "
            "restore that checkpoint (git checkout checkpoints/) or re-export this one"
        )
    return path


def _build_checked(folder: Path, config: dict, weights_bytes: int) -> torch.nn.Module:
    """build_model, but a config that cannot build, or that needs more weights than the file
    holds (e.g. a doctored width that would allocate gigabytes), is refused before allocating."""
    kind, model_config = config["kind"], config.get("model_config", {})
    try:
        with torch.device("meta"):  # shapes only, no memory
            skeleton = build_model(kind, model_config)
        needed = sum(t.numel() * (2 if t.is_floating_point() else t.element_size()) for t in skeleton.state_dict().values())
    except CheckpointError as exc:
        raise CheckpointError(f"checkpoint {folder}: {exc}") from None
    except (TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {folder}: model_config does not describe a {kind} model ({exc})") from None
    if needed > weights_bytes:
        raise CheckpointError(
            f"checkpoint {folder}: weights do not fit the stored config ({WEIGHTS} holds {weights_bytes} bytes, "
            f"the config needs at least {needed})"
        )
    return build_model(kind, model_config)


# --- training state: everything needed to resume a run exactly -------------------------

STATE_PREFIX = "state-"


def save_training_state(
    run_dir: str | os.PathLike,
    step: int,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    generators: dict[str, torch.Generator],
    extra: dict | None = None,
    keep: int = 2,
) -> Path:
    """Write run_dir/state-<step>/ (safetensors + JSON) atomically and keep the last `keep`."""
    run_dir = Path(run_dir)
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {"format_version": FORMAT_VERSION, "step": step, "optimizers": {}, "extra": extra or {}}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            tensors[f"module/{name}/{key}"] = value.detach().cpu().contiguous()
    for name, optimizer in optimizers.items():
        state = optimizer.state_dict()
        for param_id, values in state["state"].items():
            for key, value in values.items():
                tensors[f"optim/{name}/{param_id}/{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
        meta["optimizers"][name] = state["param_groups"]
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng/cuda"] = torch.cuda.get_rng_state()
    for name, generator in generators.items():
        tensors[f"rng/{name}"] = generator.get_state()
    run_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".state.", dir=run_dir))
    save_file(tensors, str(staging / "state.safetensors"))
    (staging / "state.json").write_text(json.dumps(meta, default=_jsonable))
    folder = run_dir / f"{STATE_PREFIX}{step:08d}"
    _replace_dir(staging, folder)
    for old in sorted(run_dir.glob(f"{STATE_PREFIX}*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return folder


def latest_training_state(run_dir: str | os.PathLike) -> Path | None:
    states = sorted(Path(run_dir).glob(f"{STATE_PREFIX}*")) if Path(run_dir).is_dir() else []
    return states[-1] if states else None


def load_training_state(
    folder: str | os.PathLike,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    generators: dict[str, torch.Generator],
) -> dict:
    """Restore modules, optimizers and RNG states in place; returns the JSON part (step, extra)."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "state.json").read_text())
        tensors = load_file(str(folder / "state.safetensors"))
    except (OSError, json.JSONDecodeError, SafetensorError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"training state {folder}: damaged ({exc})") from None
    for name, module in modules.items():
        prefix = f"module/{name}/"
        module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
    for name, optimizer in optimizers.items():
        prefix = f"optim/{name}/"
        state: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith(prefix):
                param_id, field = key[len(prefix) :].split("/", 1)
                state.setdefault(int(param_id), {})[field] = value
        optimizer.load_state_dict({"state": state, "param_groups": meta["optimizers"][name]})
    torch.set_rng_state(tensors["rng/torch"])
    if "rng/cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng/cuda"])
    for name, generator in generators.items():
        generator.set_state(tensors[f"rng/{name}"])
    return meta
