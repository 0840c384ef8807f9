"""Kind name -> (config class, model class). Models register themselves on import."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from retinagan.errors import CheckpointError

_REGISTRY: dict[str, tuple[type, type]] = {}


def register_model(kind: str, config_cls: type) -> Callable[[type], type]:
    def wrap(model_cls: type) -> type:
        _REGISTRY[kind] = (config_cls, model_cls)
        return model_cls

    return wrap


def list_models() -> list[str]:
    _import_families()
    return sorted(_REGISTRY)


def config_class(kind: str) -> type:
    _import_families()
    if kind not in _REGISTRY:
        raise CheckpointError(f"unknown model kind {kind!r}; known kinds: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[kind][0]


def build_model(kind: str, config: Any):
    """The model of this kind, from its config dataclass or a dict of its fields."""
    config_cls = config_class(kind)  # raises for unknown kinds
    if isinstance(config, dict):
        config = config_from_dict(config_cls, config)
    return _REGISTRY[kind][1](config)


def config_from_dict(config_cls: type, values: dict) -> Any:
    """Build a config dataclass, refusing fields this version does not know."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(values) - names
    if unknown:
        raise CheckpointError(f"config has fields this version does not know: {', '.join(sorted(unknown))}")
    return config_cls(**values)


def _import_families() -> None:
    # Importing the family modules runs their @register_model decorators.
    from retinagan.models import autoencoder, detail, photodetail, pix2pix, segmenter  # noqa: F401
