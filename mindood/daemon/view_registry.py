"""The node's views by name, kept in their tenants' directories so they outlive the daemon.

A view's definition is written when it is defined and its built state (column values plus each
source's change cursor) after updates, both sealed (``view_files``). After a restart the views
are found on disk; each is opened on first use once its tenant is unlocked: the tree is rebuilt
from the saved values without reading a document, and the update that follows reads only the
changes after the saved cursors. A state that cannot be used (missing, damaged, of an earlier
definition) costs a rebuild from the databases, nothing more.

Saving a state costs time in proportion to the view's size, so it is written once the documents
applied since the last save reach ``resave_fraction`` of the view (and after every define or
rebuild): a restart then replays at most that share, and saving costs O(1) per changed document.
A state saved at any moment is correct to resume from, since values and cursors are saved
together; it is only more or less stale.

Containment: a view file that cannot be read costs that view alone. It is listed as damaged with
the reason, reading it answers ``ViewDamagedError``, and ``view.define`` or ``view.drop`` under
its name replaces or removes it. Nothing here runs while a tenant unlocks.

Keys: a file is read only while its tenant is unlocked; what was read from a tenant (definitions,
built views) is dropped at the next call after the tenant is locked.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mindood.daemon.node import Node
from mindood.daemon.tenants import TenantRegistry
from mindood.daemon.view_definition import ViewDefinition, definition_from_wire
from mindood.daemon.view_files import (
    ViewFileError,
    ViewFiles,
    file_key,
    list_stems,
    name_of_stem,
    stem_for,
    views_dir,
)
from mindood.db import MindooDB
from mindood.errors import MindoodError
from mindood.rpc.errors import (
    CorruptDataRpcError,
    InvalidParamsError,
    LimitExceededError,
    NotFoundError,
    TenantLockedError,
)
from mindood.views import MindooDBDataProvider, ViewState, ViewStateError, VirtualView

log = logging.getLogger("mindood.views")

MAX_VIEWS = 64


class ViewDamagedError(CorruptDataRpcError):
    """A view's saved definition cannot be read; define the view again or drop it."""


@dataclass(frozen=True, slots=True)
class ViewStoreOptions:
    #: Save a view's state once the documents applied since its last save reach this share of
    #: the view's size (0 saves after every update that applied anything).
    resave_fraction: float = 0.1


class ViewSlot:
    """One view file pair and what of it is loaded; changed only under ``lock``."""

    def __init__(self, directory: Path, tenant: str, stem: str) -> None:
        self.tenant = tenant
        self.files = ViewFiles(directory, stem)
        self.name = name_of_stem(stem)
        self.definition: ViewDefinition | None = None
        self.error: str | None = None
        #: The tenant's unlock time when the definition (or error) was read: a new unlock
        #: (perhaps with another identity) reads the file again.
        self.session: float | None = None
        self.view: VirtualView | None = None
        self.handles: tuple[MindooDB, ...] = ()
        self.lock = asyncio.Lock()
        self.retired = False  # dropped or redefined while someone waited for the lock
        self.unsaved = 0  # documents applied since the state was last saved
        self.restored = 0  # documents taken from the saved state when the view was built
        self.state_note: str | None = None  # why the last build did not use the saved state

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant, self.files.stem)

    def forget(self) -> None:
        """Drop what was read under the tenant's keys."""
        self.forget_view()
        self.definition = None
        self.error = None
        self.session = None
        self.name = name_of_stem(self.files.stem)

    def forget_view(self) -> None:
        self.view = None
        self.handles = ()

    def documents_read(self) -> int:
        """Documents the current build has read from its databases (not from the state)."""
        if self.view is None:
            return 0
        providers = (self.view.get_provider(o) for o in self.view.get_origins())
        return sum(p.stats.documents_read for p in providers if isinstance(p, MindooDBDataProvider))


class ViewRegistry:
    """The views of one node, by name."""

    def __init__(
        self, data_dir: Path, tenants: TenantRegistry, options: ViewStoreOptions | None = None
    ) -> None:
        self._data_dir = data_dir
        self._tenants = tenants
        self.options = options or ViewStoreOptions()
        self._slots: dict[tuple[str, str], ViewSlot] = {}
        self._scanned: set[str] = set()

    # -- what exists -------------------------------------------------------------------------
    def _discover(self) -> None:
        """Take in the views saved in tenants not looked at yet (once per tenant and run)."""
        for tenant in self._tenants.known_ids():
            if tenant in self._scanned:
                continue
            self._scanned.add(tenant)
            directory = views_dir(self._data_dir, tenant)
            try:
                stems = list_stems(directory)
            except OSError as exc:
                log.warning(
                    "saved views cannot be listed", extra={"tenant": tenant, "error": str(exc)}
                )
                continue
            for stem in stems:
                self._slots.setdefault((tenant, stem), ViewSlot(directory, tenant, stem))

    def _session(self, tenant: str) -> float | None:
        """The tenant's unlock time, None while it is locked (or gone)."""
        try:
            slot = self._tenants.slot(tenant)
        except MindoodError:
            return None
        return None if slot.locked else slot.unlocked_at

    def _forget_locked(self) -> None:
        for slot in self._slots.values():
            if slot.lock.locked():
                continue  # in use: the user finds out, and forgets, when it is done
            if slot.session is not None and self._session(slot.tenant) != slot.session:
                slot.forget()
            elif (
                slot.view is not None
                and slot.definition is not None
                and self._any_locked(slot.definition)
            ):
                slot.forget_view()

    def _any_locked(self, definition: ViewDefinition) -> bool:
        return any(self._session(t) is None for t in definition.tenants())

    def _key(self, tenant: str) -> bytes:
        return file_key(self._tenants.unlocked(tenant).user.signing_key, tenant)

    async def _load(self, slot: ViewSlot) -> None:
        """Read the definition if the tenant is unlocked and it was not read in this unlock."""
        session = self._session(slot.tenant)
        if session is None or slot.session == session:
            return
        try:
            body = await slot.files.read("definition", self._key(slot.tenant), None)
            if body is None:
                self._slots.pop(slot.key, None)  # removed behind our back
                return
            definition = definition_from_wire(body.get("definition"))
            if definition.home_tenant != slot.tenant:
                raise ViewFileError("the definition belongs in another tenant's directory")
        except (ViewFileError, InvalidParamsError) as exc:
            slot.forget()
            slot.error = str(exc)
            where = {"tenant": slot.tenant, "file": str(slot.files.definition_path)}
            log.warning(
                "view file unusable; this view is out of service until defined again or dropped",
                extra={**where, "error": str(exc)},
            )
        else:
            slot.forget()
            slot.definition, slot.name = definition, body["name"]
        slot.session = session

    async def _candidates(self, name: str) -> list[ViewSlot]:
        """Every saved view of this name, loaded where its tenant allows (first tenant first)."""
        self._discover()
        self._forget_locked()
        stem = stem_for(name)
        found = [s for key, s in sorted(self._slots.items()) if key[1] == stem]
        for slot in found:
            if not slot.lock.locked():
                await self._load(slot)
        return found

    async def _find(self, name: str) -> ViewSlot:
        candidates = await self._candidates(name)
        for slot in candidates:
            if slot.definition is not None and slot.name == name:
                return slot
        for slot in candidates:
            if slot.error is not None:
                raise ViewDamagedError(f"view {name!r} is damaged: {slot.error}")
        for slot in candidates:
            if slot.session is None and slot.definition is None:
                raise TenantLockedError(
                    f"view {name!r} is kept in tenant {slot.tenant!r}, which is locked"
                )
        raise NotFoundError(f"no view {name!r}")

    # -- using a view ------------------------------------------------------------------------
    async def current(self, name: str) -> tuple[ViewSlot, VirtualView]:
        """The view, up to date: built (from its saved state when it can) on first use."""
        for _ in range(8):  # a view redefined while we waited: look it up again
            slot = await self._find(name)
            async with slot.lock:
                if slot.retired:
                    continue
                definition = slot.definition
                if definition is None:  # forgotten while we waited for the lock
                    continue
                try:
                    handles = await self._open(definition)
                except TenantLockedError:
                    slot.forget_view()
                    raise
                return slot, await self._refresh(slot, definition, handles)
        raise NotFoundError(f"view {name!r} keeps changing; try again")

    async def _open(self, definition: ViewDefinition) -> tuple[MindooDB, ...]:
        return tuple([await self._tenants.open_db(s.tenant, s.db) for s in definition.sources])

    async def _refresh(
        self, slot: ViewSlot, definition: ViewDefinition, handles: tuple[MindooDB, ...]
    ) -> VirtualView:
        view = slot.view
        if view is None or any(a is not b for a, b in zip(handles, slot.handles, strict=True)):
            view = definition.build(handles)
            slot.restored = await self._restore(slot, definition, view)
            if slot.restored == 0 and view.document_count():  # half restored: start clean
                view = definition.build(handles)
            slot.view, slot.handles, slot.unsaved = view, handles, 0
        result = await view.update()
        slot.unsaved += result.processed
        threshold = self.options.resave_fraction * max(1, view.document_count())
        if slot.unsaved and slot.unsaved >= threshold:
            await self._save_state(slot, definition, view)
        return view

    async def _restore(self, slot: ViewSlot, definition: ViewDefinition, view: VirtualView) -> int:
        """Fill ``view`` from the saved state; 0 (and a note why) when there is none to use."""
        try:
            body = await slot.files.read("state", self._key(slot.tenant), slot.name)
            if body is None:
                slot.state_note = "no saved state"
                return 0
            if body.get("definition") != definition.digest():
                slot.state_note = "the saved state is of an earlier definition"
                return 0
            state = await asyncio.to_thread(ViewState.from_plain, body.get("state"))
            restored = await view.restore_state(state)
        except (ViewFileError, ViewStateError) as exc:
            slot.state_note = f"the saved state is unusable: {exc}"
            log.warning(
                "saved view state unusable; rebuilding the view from its databases",
                extra={"view": slot.name, "tenant": slot.tenant, "error": str(exc)},
            )
            return 0
        slot.state_note = None
        log.info(
            "view restored from its saved state",
            extra={"view": slot.name, "tenant": slot.tenant, "documents": restored},
        )
        return restored

    async def _save_state(
        self, slot: ViewSlot, definition: ViewDefinition, view: VirtualView
    ) -> None:
        """Write the state; a failure is logged and costs only a slower next start."""
        assert slot.name is not None
        try:
            body = {"definition": definition.digest(), "state": view.export_state().to_plain()}
            await slot.files.write("state", self._key(slot.tenant), slot.name, body)
        except (ViewFileError, ViewStateError) as exc:
            log.warning(
                "view state not saved; the next start rebuilds it from its databases",
                extra={"view": slot.name, "tenant": slot.tenant, "error": str(exc)},
            )
        slot.unsaved = 0  # on failure too: retried after as many changes, not on every read

    # -- defining and dropping ---------------------------------------------------------------
    async def define(self, name: str, definition: ViewDefinition) -> tuple[ViewSlot, VirtualView]:
        """Define (or replace) the view, save its definition, build it and save its state."""
        existing = await self._candidates(name)
        if not existing and len(self._slots) >= MAX_VIEWS:
            raise LimitExceededError(f"at most {MAX_VIEWS} views per daemon")
        handles = await self._open(definition)  # the sources exist and are unlocked
        home = definition.home_tenant
        key = self._key(home)
        slot = ViewSlot(views_dir(self._data_dir, home), home, stem_for(name))
        async with slot.lock:
            # The new definition first: if it cannot be written, the old view stays as it was.
            await slot.files.write("definition", key, name, {"definition": definition.to_wire()})
            await slot.files.delete("state")  # of an earlier definition under this name
            for old in existing:
                async with old.lock:
                    old.retired = True
                    if old.tenant != home:
                        await old.files.delete()
                    self._slots.pop(old.key, None)
            replaced = self._slots.get(slot.key)
            if replaced is not None:  # a define of the same name that ran meanwhile
                replaced.retired = True
            slot.definition, slot.name, slot.session = definition, name, self._session(home)
            self._slots[slot.key] = slot
            self._scanned.add(home)
            log.info("view defined", extra={"view": name, "tenant": home})
            view = await self._refresh(slot, definition, handles)
            slot.state_note = None  # built from the databases because it is new
            return slot, view

    async def drop(self, name: str) -> None:
        """Forget the view and remove its files (damaged or locked ones too)."""
        found = await self._candidates(name)
        if not found:
            raise NotFoundError(f"no view {name!r}")
        for slot in found:
            async with slot.lock:
                slot.retired = True
                await slot.files.delete()
                slot.forget()
                self._slots.pop(slot.key, None)
        log.info("view dropped", extra={"view": name})

    async def describe(self) -> list[dict[str, Any]]:
        """Every view with its state: ready, locked (its tenant is) or damaged (and why)."""
        self._discover()
        self._forget_locked()
        for slot in list(self._slots.values()):
            if not slot.lock.locked():
                await self._load(slot)
        out = [_describe(slot) for slot in self._slots.values()]
        return sorted(out, key=lambda d: (d["name"] is None, d["name"] or "", d["tenant"]))


def _describe(slot: ViewSlot) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": slot.name, "tenant": slot.tenant}
    if slot.definition is not None:
        entry["state"] = "ready"
        entry["origins"] = [s.origin for s in slot.definition.sources]
        entry["built"] = slot.view is not None
        if slot.view is not None:
            entry["documents"] = slot.view.document_count()
            entry["restored_documents"] = slot.restored
            entry["documents_read"] = slot.documents_read()
            if slot.state_note is not None:
                entry["rebuild_reason"] = slot.state_note
    elif slot.error is not None:
        entry["state"] = "damaged"
        entry["error"] = slot.error
    else:
        entry["state"] = "locked"
    return entry


_registries: weakref.WeakKeyDictionary[Node, ViewRegistry] = weakref.WeakKeyDictionary()


def registry(node: Node, options: ViewStoreOptions | None = None) -> ViewRegistry:
    """The node's view registry (made on first use, with ``options`` if given then)."""
    found = _registries.get(node)
    if found is None:
        found = _registries[node] = ViewRegistry(node.data_dir, node.tenants, options)
    elif options is not None and options != found.options:
        raise ValueError("the node's view registry exists already with other options")
    return found


__all__ = [
    "MAX_VIEWS",
    "ViewDamagedError",
    "ViewRegistry",
    "ViewSlot",
    "ViewStoreOptions",
    "registry",
]
