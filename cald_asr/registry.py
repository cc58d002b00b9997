"""The one shape of every name table (mixers, encoders, front ends, pretrained loaders, strategies,
optimisers, schedulers, tasks): a dict from the name a config uses to a class or builder, whose lookup
fails the same way everywhere, listing the known names."""

from __future__ import annotations

from typing import Dict, Mapping, TypeVar

T = TypeVar("T")


class Registry(Dict[str, T]):
    """`Registry("mixer", {"mamba2": Mamba2, ...})`; `table.lookup(name, source)` returns the entry or raises
    ValueError("<source>: unknown mixer 'x'; known: a, b, c")."""

    def __init__(self, kind: str, entries: Mapping[str, T] = ()):
        super().__init__(entries)
        self.kind = kind

    def lookup(self, name: object, source: str = "") -> T:
        if not isinstance(name, str) or name not in self:
            where = f"{source}: " if source else ""
            raise ValueError(f"{where}unknown {self.kind} {name!r}; known: {', '.join(sorted(self))}")
        return self[name]
