"""Command-line options generated from typed config dataclasses (nested ones get a prefix)."""
from __future__ import annotations

import argparse
import dataclasses
import typing


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    hints = typing.get_type_hints(cls)
    defaults = cls()
    for f in dataclasses.fields(cls):
        kind, default = hints[f.name], getattr(defaults, f.name)
        flag = "--" + prefix + f.name.replace("_", "-")
        if dataclasses.is_dataclass(kind):
            add_dataclass_args(parser, kind, prefix=f"{prefix}{f.name}.")
        elif kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f"(default {default})")
        else:
            parser.add_argument(flag, type=kind, default=None, metavar=kind.__name__.upper(), help=f"(default {default})")


def dataclass_from_args(cls: type, args: argparse.Namespace, prefix: str = ""):
    """Build cls from parsed options; options left out keep the dataclass defaults."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            values[f.name] = dataclass_from_args(hints[f.name], args, prefix=f"{prefix}{f.name}.")
        else:
            value = getattr(args, (prefix + f.name), None)
            if value is not None:
                values[f.name] = value
    return cls(**values)
