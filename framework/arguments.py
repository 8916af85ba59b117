"""Parsers of plugin arguments (the ``ARG`` of ``name:ARG``), for a spec's ``parse``.

Each takes the text after ``name:`` and returns what the factory is given, or raises
:class:`ValueError` saying what it expected; :meth:`tlf.specs.Spec.argument_value` turns
that into a one-line :class:`~tlf.errors.TlfError` naming the plugin. Values are converted
by click's parameter types (the CLI's own); the list forms (``N,M``, ``key=value,...``) are
written here because click parses one value per option. Ranges stay with the objects that
need them (``Gradual``, ``MixUp``, ...), so each limit is stated once.
"""
from __future__ import annotations

from typing import Callable, Sequence

import click


def _convert(kind: click.ParamType, text: str) -> object:
    try:
        return kind.convert(text.strip(), None, None)
    except click.BadParameter as exc:
        raise ValueError(exc.message) from None


def integer(text: str) -> int:
    """A whole number: ``"2"`` -> 2."""
    return _convert(click.INT, text)


def number(text: str) -> float:
    """A number: ``"0.5"`` -> 0.5."""
    return _convert(click.FLOAT, text)


def integers(most: int) -> Callable[[str], tuple[int, ...]]:
    """1 to ``most`` comma-separated whole numbers: ``"2,9"`` -> (2, 9)."""
    def parse(text: str) -> tuple[int, ...]:
        items = text.split(",")
        if len(items) > most:
            raise ValueError(f"at most {most} comma-separated numbers, got {len(items)}")
        return tuple(integer(item) for item in items)
    return parse


def integer_options(keys: Sequence[str], bare: str) -> Callable[[str], dict[str, int]]:
    """``key=N`` items joined by commas, keys among ``keys``; a bare ``N`` sets ``bare``:
    ``"100,val=20"`` -> {"train": 100, "val": 20}."""
    def parse(text: str) -> dict[str, int]:
        options = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, value = item.partition("=")
            key = key.strip() if sep else bare
            if key not in keys:
                raise ValueError(f"unknown option {key!r}; options: {', '.join(keys)}")
            options[key] = integer(value if sep else item)
        return options
    return parse
