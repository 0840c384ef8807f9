"""Command-line options generated from typed config dataclasses (nested ones get a prefix)."""
from __future__ import annotations

import argparse
import dataclasses
import typing


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, prefix: str = "", defaults=None) -> None:
    """defaults: the instance whose values the help shows (nested configs: the parent's field value)."""
    hints = typing.get_type_hints(cls)
    defaults = cls() if defaults is None else defaults
    for f in dataclasses.fields(cls):
        kind, default = hints[f.name], getattr(defaults, f.name)
        flag = "--" + prefix + f.name.replace("_", "-")
        if dataclasses.is_dataclass(kind):
            add_dataclass_args(parser, kind, prefix=f"{prefix}{f.name}.", defaults=default)
        elif kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f"(default {default})")
        else:
            parser.add_argument(flag, type=kind, default=None, metavar=kind.__name__.upper(), help=f"(default {default})")


def dataclass_from_args(cls: type, args: argparse.Namespace, prefix: str = "", base=None):
    """Build cls from parsed options; options left out keep the defaults — for a nested config,
    the parent's default for that field (its default_factory), not the nested class's own."""
    hints = typing.get_type_hints(cls)
    base = cls() if base is None else base
    values = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            values[f.name] = dataclass_from_args(hints[f.name], args, f"{prefix}{f.name}.", getattr(base, f.name))
        else:
            value = getattr(args, (prefix + f.name), None)
            if value is not None:
                values[f.name] = value
    return dataclasses.replace(base, **values)
