"""Which entries make up a document, from metadata alone (no key needed).

Given a document's entry metadata and a trust rule, the plan picks the best trusted snapshot and
lists the changes to apply after it in a dependency-respecting order. Entries whose ancestry is
not complete (an untrusted or missing parent) are left out, because Automerge cannot apply a
change before its dependencies.

Time travel is the same plan over the entries created before a cutoff (``until``, exclusive, as
the reference's ``creationDateUntil``). Ordering is causal first: a change never precedes its
parents, and only entries that are ready at the same moment are ordered by ``(created_at, id)``,
so two entries stamped in the same millisecond still come parent first.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from store.entry import REPLAY_ENTRY_TYPES, EntryMetadata, EntryType

_LIFECYCLE = frozenset({EntryType.DOC_DELETE, EntryType.DOC_UNDELETE})
#: Entry types as module constants: an enum member looked up on its class costs about five
#: times a global, and the planning loops ask for them once per entry of every document read.
_CREATE, _DELETE, _SNAPSHOT = EntryType.DOC_CREATE, EntryType.DOC_DELETE, EntryType.DOC_SNAPSHOT


@dataclass(frozen=True, slots=True)
class DocPlan:
    doc_id: str
    snapshot: EntryMetadata | None
    #: Replay entries to apply after the snapshot, parents before children.
    changes: tuple[EntryMetadata, ...]
    #: Every replay entry the materialised document contains (covered by the snapshot or applied).
    included: frozenset[str]
    #: Trusted replay entries left out because a parent is missing or untrusted.
    blocked: tuple[str, ...]
    create: EntryMetadata | None
    deleted: bool
    last_modified: int


def _select(
    doc_id: str,
    metas: Iterable[EntryMetadata],
    applies: Callable[[EntryMetadata], bool],
    until: int | None,
) -> tuple[dict[str, EntryMetadata], list[EntryMetadata]]:
    """The trusted replay entries (created before ``until``) by id, and the trusted snapshots.

    Snapshots are not cut off by time: one whose heads are all visible holds exactly the
    (visible) ancestors of those heads, whenever it was written.
    """
    replay: dict[str, EntryMetadata] = {}
    snapshots: list[EntryMetadata] = []
    for meta in metas:
        if meta.doc_id != doc_id or not applies(meta):
            continue
        if meta.entry_type in REPLAY_ENTRY_TYPES:
            if until is None or meta.created_at < until:
                replay[meta.id] = meta
        elif meta.entry_type is _SNAPSHOT:
            snapshots.append(meta)
    return replay, snapshots


def plan_document(
    doc_id: str,
    metas: Iterable[EntryMetadata],
    applies: Callable[[EntryMetadata], bool],
    until: int | None = None,
) -> DocPlan:
    """Plan the materialisation of one document (as of ``until`` when given)."""
    replay, snapshots = _select(doc_id, metas, applies, until)
    changes = None if snapshots else (_chain_order(replay) or _closed_order(replay))
    if changes is not None:  # every entry complete, nothing covered: one sort plans it all
        snapshot, included = None, frozenset(replay)
        facts = _facts(changes)
    else:
        complete = _complete_entries(replay)
        snapshot, covered = _best_snapshot(snapshots, replay, complete)
        changes = _topological([replay[i] for i in complete - covered])
        included = frozenset(complete | covered)
        facts = _facts(replay[i] for i in included)
    blocked = tuple(sorted(set(replay) - included)) if len(included) < len(replay) else ()
    create, deleted, last_modified = facts
    return DocPlan(
        doc_id, snapshot, tuple(changes), included, blocked, create, deleted, last_modified
    )


def _facts(metas: Iterable[EntryMetadata]) -> tuple[EntryMetadata | None, bool, int]:
    """The first create (by ``(created_at, id)``), whether the newest delete/undelete (see
    ``lifecycle_key``) is a delete, and the latest ``created_at`` (0 for none): one pass."""
    create: EntryMetadata | None = None
    event: EntryMetadata | None = None
    latest: int | None = None
    for meta in metas:
        if latest is None or meta.created_at > latest:
            latest = meta.created_at
        kind = meta.entry_type
        if kind is _CREATE:
            if create is None or (meta.created_at, meta.id) < (create.created_at, create.id):
                create = meta
        elif kind in _LIFECYCLE and (event is None or lifecycle_key(meta) > lifecycle_key(event)):
            event = meta
    deleted = event is not None and event.entry_type is _DELETE
    return create, deleted, 0 if latest is None else latest


def history_order(
    doc_id: str,
    metas: Iterable[EntryMetadata],
    applies: Callable[[EntryMetadata], bool],
    until: int | None = None,
) -> list[EntryMetadata]:
    """Every applicable replay entry of a document, parents first, ties by ``(created_at, id)``.

    The order in which ``iterate_document_history`` replays versions: each prefix of it is a
    causally closed state of the document.
    """
    replay, _ = _select(doc_id, metas, applies, until)
    complete = _complete_entries(replay)
    return _topological([replay[i] for i in complete])


def lifecycle_key(meta: EntryMetadata) -> tuple[int, str]:
    """How concurrent delete/undelete entries are ranked: the later ``(created_at, id)`` wins."""
    return (meta.created_at, meta.id)


def _complete_entries(replay: dict[str, EntryMetadata]) -> set[str]:
    """Entries whose every ancestor is present and trusted (a forged cycle counts as broken)."""
    state: dict[str, bool] = {}
    visiting: set[str] = set()
    for root in replay:
        # Iterative DFS: histories can be far deeper than Python's recursion limit.
        stack = [root]
        while stack:
            current = stack[-1]
            if current in state:
                stack.pop()
                continue
            meta = replay.get(current)
            if meta is None:
                state[current] = False
                stack.pop()
                continue
            if current not in visiting:
                visiting.add(current)
                pending = [d for d in meta.dependency_ids if d not in state and d not in visiting]
                if pending:
                    stack.extend(pending)
                    continue
            state[current] = all(state.get(d, False) for d in meta.dependency_ids)
            visiting.discard(current)
            stack.pop()
    return {entry_id for entry_id in replay if state.get(entry_id)}


def _chain_order(replay: dict[str, EntryMetadata]) -> list[EntryMetadata] | None:
    """``replay`` in its own order if that is the only causal order, else None.

    It is when the first entry has no parent and every later one has the entry before it as a
    parent and no parent after it: Kahn's sort then never has two entries ready at once, so
    ``_topological`` would give this order. The usual history of a document edited at one
    place at a time, in receipt order, is such a chain; checking it costs one pass.
    """
    seen: set[str] = set()
    previous = ""
    for meta in replay.values():
        deps = meta.dependency_ids
        if (previous and previous not in deps) or not seen.issuperset(deps):
            return None
        previous = meta.id
        seen.add(previous)
    return list(replay.values())


def _closed_order(replay: dict[str, EntryMetadata]) -> list[EntryMetadata] | None:
    """``_topological`` of all of ``replay`` if every entry is complete, else None.

    The common case of a cold read (no snapshot, nothing missing or untrusted): when every
    parent is present and the sort places every entry (no forged cycle), ``_complete_entries``
    would find them all complete, so its walk is skipped.
    """
    for meta in replay.values():
        for dep in meta.dependency_ids:
            if dep not in replay:
                return None
    ordered = _topological(list(replay.values()))
    return ordered if len(ordered) == len(replay) else None


def _ancestors(heads: Iterable[str], replay: dict[str, EntryMetadata]) -> set[str]:
    seen: set[str] = set()
    stack = list(heads)
    while stack:
        current = stack.pop()
        if current in seen or current not in replay:
            continue
        seen.add(current)
        stack.extend(replay[current].dependency_ids)
    return seen


def _best_snapshot(
    snapshots: list[EntryMetadata], replay: dict[str, EntryMetadata], complete: set[str]
) -> tuple[EntryMetadata | None, set[str]]:
    """The snapshot covering the most complete entries; ties go to the newer snapshot.

    A snapshot counts only if every head it claims is a complete, trusted entry here, so a
    snapshot can never smuggle in changes the trust rule would have left out.
    """
    best: EntryMetadata | None = None
    best_cover: set[str] = set()
    for snap in snapshots:
        heads = snap.snapshot_head_entry_ids or snap.dependency_ids
        if not heads or any(h not in complete for h in heads):
            continue
        cover = _ancestors(heads, replay)
        better = len(cover) > len(best_cover) or (
            best is not None
            and len(cover) == len(best_cover)
            and (snap.created_at, snap.id) > (best.created_at, best.id)
        )
        if best is None or better:
            best, best_cover = snap, cover
    return best, best_cover


def _topological(metas: list[EntryMetadata]) -> list[EntryMetadata]:
    """Kahn's order with ties broken by ``(created_at, id)`` so every replica plans alike."""
    by_id = {m.id: m for m in metas}
    waiting: dict[str, int] = {}
    children: dict[str, list[str]] = {}
    ready: list[tuple[int, str]] = []
    for meta in by_id.values():
        count = 0
        for dep in meta.dependency_ids:
            if dep in by_id:
                count += 1
                children.setdefault(dep, []).append(meta.id)
        waiting[meta.id] = count
        if not count:
            ready.append((meta.created_at, meta.id))
    heapq.heapify(ready)
    ordered: list[EntryMetadata] = []
    while ready:
        _, entry_id = heapq.heappop(ready)
        ordered.append(by_id[entry_id])
        for child in children.get(entry_id, ()):
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (by_id[child].created_at, child))
    return ordered
