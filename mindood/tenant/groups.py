"""Groups: named sets of users and other groups, kept in ``$publicinfos`` documents (§6.3).

A group document is ``{form: "group", type: "group", groupName, members_hashes,
members_encrypted}``. ``groupName`` is NFKC + lower case (names are case-insensitive);
``members_hashes[i]`` is the v3 hash of a member's name and ``members_encrypted[i]`` that name's
bare UTF-8 bytes encrypted with the ``default`` key, so a relay can resolve memberships while only
members read the names. A member whose hash is the hash of another group's name is that group
(nesting); a DN wildcard member (``*/O=acme``, ``*``) takes in every name it matches.

Two admins creating the same group offline produce two documents; readers merge all documents of
one name by union, and resolution walks nesting with a visited set, so cycles terminate.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, MutableMapping, MutableSequence, Sequence
from dataclasses import dataclass
from typing import Any

from mindood.tenant.grants import plain

FORM = "group"
TYPE = "group"


@dataclass(frozen=True, slots=True)
class GroupDoc:
    """One group document as read."""

    doc_id: str
    name: str
    members: tuple[tuple[str, str | None], ...]  # (hash, encrypted name or None)


@dataclass(frozen=True, slots=True)
class Group:
    """All documents of one group name, merged."""

    name: str
    doc_ids: tuple[str, ...]
    member_hashes: frozenset[str]
    encrypted_members: tuple[str, ...]


def parse_group(doc_id: str, data: Mapping[str, Any]) -> GroupDoc | None:
    """The group in a directory document, or None for any other document."""
    if data.get("form") != FORM:
        return None
    name = data.get("groupName")
    if not isinstance(name, str) or not name:
        return None
    hashes = plain(data.get("members_hashes"))
    encrypted = plain(data.get("members_encrypted"))
    hashes = hashes if isinstance(hashes, list) else []
    encrypted = encrypted if isinstance(encrypted, list) else []
    members = []
    for i, member in enumerate(hashes):
        if isinstance(member, str) and member:
            enc = encrypted[i] if i < len(encrypted) and isinstance(encrypted[i], str) else None
            members.append((member, enc))
    return GroupDoc(doc_id, name, tuple(members))


def merge_groups(docs: Iterable[GroupDoc]) -> dict[str, Group]:
    """Group documents by name, members united (first encrypted copy of a member wins)."""
    by_name: dict[str, list[GroupDoc]] = {}
    for doc in docs:
        by_name.setdefault(doc.name, []).append(doc)
    merged: dict[str, Group] = {}
    for name, group_docs in by_name.items():
        seen: dict[str, str | None] = {}
        for doc in sorted(group_docs, key=lambda d: d.doc_id):
            for member, enc in doc.members:
                if seen.get(member) is None:
                    seen[member] = enc
        merged[name] = Group(
            name=name,
            doc_ids=tuple(sorted(d.doc_id for d in group_docs)),
            member_hashes=frozenset(seen),
            encrypted_members=tuple(e for e in seen.values() if e is not None),
        )
    return merged


def groups_of(
    groups: Mapping[str, Group],
    candidates: Iterable[str],
    group_hashes: Callable[[str], Iterable[str]],
) -> set[str]:
    """Names of every group a member (given by its possible hashes) is in, directly or nested.

    ``group_hashes`` gives every hash a group's name may be listed under in a parent group.
    Breadth-first over "is a member of" edges; each group is visited once, so cycles end.
    """
    frontier: deque[str] = deque(dict.fromkeys(candidates))
    seen_hashes = set(frontier)
    found: set[str] = set()
    while frontier:
        member = frontier.popleft()
        for name, group in groups.items():
            if name in found or member not in group.member_hashes:
                continue
            found.add(name)
            for own in group_hashes(name):
                if own not in seen_hashes:
                    seen_hashes.add(own)
                    frontier.append(own)
    return found


def resolve_members(
    groups: Mapping[str, Group], name: str, group_hash: Callable[[str], str]
) -> frozenset[str]:
    """Hashes of every non-group member of ``name``, through nested groups (cycle-safe)."""
    hash_to_group = {group_hash(n): n for n in groups}
    pending = deque([name])
    visited: set[str] = set()
    users: set[str] = set()
    while pending:
        current = pending.popleft()
        if current in visited or current not in groups:
            continue
        visited.add(current)
        for member in groups[current].member_hashes:
            nested = hash_to_group.get(member)
            if nested is None:
                users.add(member)
            else:
                pending.append(nested)
    return frozenset(users)


def new_group_data(name: str, members: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Fields of a new group document; ``members`` are ``(hash, encrypted name)`` pairs."""
    return {
        "form": FORM,
        "type": TYPE,
        "groupName": name,
        "members_hashes": [h for h, _ in members],
        "members_encrypted": [e for _, e in members],
    }


def _live_list(data: MutableMapping[str, Any], key: str) -> MutableSequence[Any]:
    # In-place edits let Automerge merge two admins' concurrent membership changes.
    value = data.get(key)
    if isinstance(value, MutableSequence):
        return value
    data[key] = []
    stored = data[key]
    assert isinstance(stored, MutableSequence)
    return stored


def add_members(data: MutableMapping[str, Any], members: Sequence[tuple[str, str]]) -> bool:
    """Append members not yet present (hash and encrypted name kept aligned)."""
    hashes = _live_list(data, "members_hashes")
    encrypted = _live_list(data, "members_encrypted")
    while len(encrypted) < len(hashes):  # repair a damaged document before appending
        encrypted.append("")
    present = set(plain(hashes))
    added = False
    for member, enc in members:
        if member not in present:
            present.add(member)
            hashes.append(member)
            encrypted.insert(len(hashes) - 1, enc)
            added = True
    return added


def remove_members(data: MutableMapping[str, Any], member_hashes: Iterable[str]) -> bool:
    """Drop every listed hash (with its encrypted name); False when nothing changes."""
    drop = set(member_hashes)
    hashes = _live_list(data, "members_hashes")
    encrypted = _live_list(data, "members_encrypted")
    positions = [i for i, h in enumerate(plain(hashes)) if h in drop]
    for index in reversed(positions):
        del hashes[index]
        if index < len(encrypted):
            del encrypted[index]
    return bool(positions)
