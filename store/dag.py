"""Walking the entry DAG backwards through ``dependency_ids`` (``resolve_dependencies``).

Backend-neutral and free of I/O: ``DependencyWalk`` asks for the metadata of one breadth-first
level at a time and is fed what the store found, so an in-memory store answers from a dict and a
disk store can read a whole level in one batch. ``resolve`` and ``resolve_async`` drive it.

Semantics (shared by every backend, checked by the conformance suite):

- breadth-first from the start entry, each entry's ``dependency_ids`` in their signed order;
  every id appears once, at its shortest distance from the start (merges are not repeated);
- the start entry comes first, unless ``include_start`` is false;
- an entry of ``stop_at_entry_type`` is included but its dependencies are not followed (this
  holds for the start entry too: a snapshot already stands for its whole past);
- with ``max_depth = d`` no entry more than ``d`` edges from the start is included;
- ids the store does not hold are skipped, and so is everything reachable only through them;
- cycles (which honest authors cannot create, but a forged entry could) end the walk, not loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from store.base import ResolveOptions
from store.entry import EntryMetadata

_DEFAULT_OPTIONS = ResolveOptions()


class DependencyWalk:
    """One breadth-first walk; call ``wanted()``, look those ids up, ``feed()``, until done."""

    def __init__(self, start_id: str, options: ResolveOptions | None = None) -> None:
        self._options = options or _DEFAULT_OPTIONS
        if self._options.max_depth is not None and self._options.max_depth < 0:
            raise ValueError("max_depth must not be negative")
        self._start_id = start_id
        self._frontier: list[str] = [start_id]
        self._seen: set[str] = {start_id}
        self._depth = 0
        self._result: list[str] = []

    @property
    def done(self) -> bool:
        return not self._frontier

    def wanted(self) -> list[str]:
        """The ids of the current level whose metadata the walk needs next (may be empty)."""
        return list(self._frontier)

    def feed(self, found: Mapping[str, EntryMetadata]) -> None:
        """Advance one level with the metadata found for ``wanted()``; absent ids are missing."""
        options = self._options
        expand = options.max_depth is None or self._depth < options.max_depth
        next_level: list[str] = []
        for entry_id in self._frontier:
            meta = found.get(entry_id)
            if meta is None:
                continue
            if self._depth > 0 or options.include_start:
                self._result.append(entry_id)
            if not expand or meta.entry_type == options.stop_at_entry_type:
                continue
            for dep in meta.dependency_ids:
                if dep not in self._seen:
                    self._seen.add(dep)
                    next_level.append(dep)
        self._frontier = next_level
        self._depth += 1

    def result(self) -> list[str]:
        """The ids collected so far; complete once ``done``."""
        return list(self._result)


def _by_id(items: Iterable[EntryMetadata]) -> dict[str, EntryMetadata]:
    return {meta.id: meta for meta in items}


def resolve(
    start_id: str,
    lookup: Callable[[str], EntryMetadata | None],
    options: ResolveOptions | None = None,
) -> list[str]:
    """Run a walk against a synchronous one-id lookup (``None`` = not in the store)."""
    walk = DependencyWalk(start_id, options)
    while not walk.done:
        found: dict[str, EntryMetadata] = {}
        for entry_id in walk.wanted():
            meta = lookup(entry_id)
            if meta is not None:
                found[entry_id] = meta
        walk.feed(found)
    return walk.result()


async def resolve_async(
    start_id: str,
    lookup_many: Callable[[Sequence[str]], Awaitable[Sequence[EntryMetadata]]],
    options: ResolveOptions | None = None,
) -> list[str]:
    """Run a walk against a batch lookup shaped like ``ContentAddressedStore.get_metadata``."""
    walk = DependencyWalk(start_id, options)
    while not walk.done:
        walk.feed(_by_id(await lookup_many(walk.wanted())))
    return walk.result()
