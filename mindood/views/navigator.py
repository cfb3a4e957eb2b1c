"""Reading a view: a cursor over its entries as one reader sees them.

A navigator adds to the view what is per reader: which categories are expanded, which entries are
selected, which entries the reader may see (an access callback), and whether categories or
documents alone are listed. The view itself stays shared and unchanged by reading.

Order is depth first: a category, then (if expanded) its children, then its next sibling.
Expansion follows a default (all, none, or "down to level n", counted from the navigator's top)
with per-category exceptions, the way an outline remembers what one opened and closed.

Visibility. With an access callback, a document is shown only if the callback allows it, and a
category only if the callback allows it *and* it holds at least one document the reader may see:
a category heading is data too (a department name, a customer), and showing one whose every
document is hidden would leak it. In documents-only mode categories are not listed but are always
walked through (a reader cannot expand what is not listed); in categories-only mode documents
are never listed.

Positions ("1.2.3") are the view's, the same for every reader; hidden entries are skipped, not
renumbered. A navigator never changes the view; after ``view.update()`` an entry the update
removed is no longer in the view and stepping from it fails (go somewhere with ``goto_pos``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from mindood.views.columns import ViewDefinitionError
from mindood.views.entries import CATEGORY_ORIGIN, CategoryEntry, DocumentEntry, ViewEntry
from mindood.views.sortedlist import SortedKeyList
from mindood.views.view import VirtualView

#: ``entry -> bool``: whether the reader may see this entry (categories are asked too).
AccessCallback = Callable[[ViewEntry], bool]

_Stack = list[Iterator[ViewEntry]]
_BackStack = list[tuple[Iterator[ViewEntry], CategoryEntry | None]]


class Navigator:
    """One reader's cursor, expansion, selection and visibility over a view."""

    def __init__(
        self,
        view: VirtualView,
        *,
        top: CategoryEntry | None = None,
        categories_only: bool = False,
        documents_only: bool = False,
        access: AccessCallback | None = None,
        expand_level: float = 0,
    ) -> None:
        if categories_only and documents_only:
            raise ViewDefinitionError("a navigator lists categories, documents, or both")
        self._view = view
        self._top = top if top is not None else view.get_root()
        self._categories_only = categories_only
        self._documents_only = documents_only
        self._access = access
        self._expand_level = expand_level
        self._toggled: set[str] = set()
        self._select_all = False
        self._selection: set[tuple[str, str]] = set()  # selected, or deselected under select-all
        self._current: ViewEntry | None = None
        self._allowed: dict[str, bool] = {}
        self._allowed_version = view.version

    @property
    def view(self) -> VirtualView:
        return self._view

    def get_current_entry(self) -> ViewEntry | None:
        return self._current

    def get_top(self) -> CategoryEntry:
        """The category this navigator lists below (the view's root unless ``from_category``)."""
        return self._top

    # -- expansion ---------------------------------------------------------------------------
    def expand_all(self) -> Navigator:
        self._expand_level, self._toggled = math.inf, set()
        return self

    def collapse_all(self) -> Navigator:
        self._expand_level, self._toggled = 0, set()
        return self

    def expand_to_level(self, level: int) -> Navigator:
        """Expand the categories above ``level`` (relative to the top): entries down to it show."""
        self._expand_level, self._toggled = max(0, level), set()
        return self

    def expand(self, entry: ViewEntry) -> Navigator:
        return self._set_expanded(entry, True)

    def collapse(self, entry: ViewEntry) -> Navigator:
        return self._set_expanded(entry, False)

    def expand_pos(self, position: str) -> bool:
        entry = self._view.entry_at(position)
        if not isinstance(entry, CategoryEntry):
            return False
        self.expand(entry)
        return True

    def collapse_pos(self, position: str) -> bool:
        entry = self._view.entry_at(position)
        if not isinstance(entry, CategoryEntry):
            return False
        self.collapse(entry)
        return True

    def is_expanded(self, entry: ViewEntry) -> bool:
        if not isinstance(entry, CategoryEntry):
            return False
        if entry is self._top:
            return True
        return self._default_expanded(entry) != (entry.id in self._toggled)

    def _default_expanded(self, category: CategoryEntry) -> bool:
        return self._relative_level(category) < self._expand_level

    def _set_expanded(self, entry: ViewEntry, expanded: bool) -> Navigator:
        if isinstance(entry, CategoryEntry) and entry is not self._top:
            if self._default_expanded(entry) == expanded:
                self._toggled.discard(entry.id)
            else:
                self._toggled.add(entry.id)
        return self

    def _relative_level(self, entry: ViewEntry) -> int:
        return entry.get_level() - self._top.get_level() - 1

    # -- visibility --------------------------------------------------------------------------
    def is_visible(self, entry: ViewEntry) -> bool:
        """Whether this navigator lists ``entry`` now (under its top, expanded, allowed)."""
        if not self._shown(entry) or not self._under_top(entry):
            return False
        node = entry.parent
        while node is not None and node is not self._top:
            if not self._opens(node):
                return False
            node = node.parent
        return True

    def _under_top(self, entry: ViewEntry) -> bool:
        node = entry.parent
        while node is not None:
            if node is self._top:
                return True
            node = node.parent
        return False

    def _may_see(self, entry: ViewEntry) -> bool:
        if self._access is None:
            return True
        if isinstance(entry, DocumentEntry):
            return bool(self._access(entry))
        assert isinstance(entry, CategoryEntry)
        if self._allowed_version != self._view.version:
            self._allowed, self._allowed_version = {}, self._view.version
        allowed = self._allowed.get(entry.id)
        if allowed is None:
            allowed = (entry.is_root() or bool(self._access(entry))) and any(
                self._may_see(c) for c in entry.children
            )
            self._allowed[entry.id] = allowed
        return allowed

    def _shown(self, entry: ViewEntry) -> bool:
        if self._categories_only and not entry.is_category():
            return False
        if self._documents_only and not entry.is_document():
            return False
        return self._may_see(entry)

    def _opens(self, entry: ViewEntry) -> bool:
        """Whether the walk goes into ``entry``'s children."""
        if not isinstance(entry, CategoryEntry) or not entry.children:
            return False
        if entry is not self._top and not (self._documents_only or self.is_expanded(entry)):
            return False
        return self._may_see(entry)

    # -- single steps ------------------------------------------------------------------------
    def goto_first(self) -> bool:
        return self._move(next(self.entries_forward(), None))

    def goto_last(self) -> bool:
        return self._move(next(self.entries_backward(), None))

    def goto_next(self) -> bool:
        if not self._current_in_view():
            return False
        return self._move(next(self.entries_forward(start=self._current), None))

    def goto_prev(self) -> bool:
        if not self._current_in_view():
            return False
        return self._move(next(self.entries_backward(start=self._current), None))

    def goto_next_sibling(self) -> bool:
        return self._goto_sibling(forward=True)

    def goto_prev_sibling(self) -> bool:
        return self._goto_sibling(forward=False)

    def goto_parent(self) -> bool:
        if not self._current_in_view():
            return False
        assert self._current is not None
        parent = self._current.parent
        if parent is None or parent is self._top or not self._shown(parent):
            return False
        return self._move(parent)

    def goto_first_child(self) -> bool:
        current = self._current
        if not self._current_in_view() or not isinstance(current, CategoryEntry):
            return False
        if not self._opens(current):
            return False
        return self._move(next((c for c in current.children if self._shown(c)), None))

    def goto_pos(self, position: str | Sequence[int], *, reveal: bool = False) -> bool:
        """Go to the entry at ``position`` if this navigator lists it.

        ``reveal`` expands its categories first (what a reader clicking a search hit expects).
        """
        entry = self._view.entry_at(position)
        return entry is not None and self.goto(entry, reveal=reveal)

    def goto(self, entry: ViewEntry, *, reveal: bool = False) -> bool:
        if not entry.in_view() or not self._under_top(entry):
            return False
        if reveal:
            node = entry.parent
            while node is not None and node is not self._top:
                self.expand(node)
                node = node.parent
        if not self.is_visible(entry):
            return False
        self._current = entry
        return True

    def _move(self, entry: ViewEntry | None) -> bool:
        if entry is None:
            return False
        self._current = entry
        return True

    def _current_in_view(self) -> bool:
        return self._current is not None and self._current.in_view()

    def _goto_sibling(self, *, forward: bool) -> bool:
        current = self._current
        if not self._current_in_view() or current is None or current.parent is None:
            return False
        siblings = current.parent.children
        index = siblings.index(current.sort_key)
        candidates = siblings.iter_from(index + 1) if forward else siblings.iter_before(index)
        return self._move(next((s for s in candidates if self._shown(s)), None))

    # -- iteration ---------------------------------------------------------------------------
    def entries_forward(
        self, selected_only: bool = False, *, start: ViewEntry | None = None
    ) -> Iterator[ViewEntry]:
        """Listed entries in view order, from the first (or from after ``start``).

        ``start`` may itself be hidden (say its category was collapsed since): the walk goes on
        with whatever is listed after it.
        """
        if start is None:
            stack: _Stack = [iter(self._top.children)] if self._opens(self._top) else []
        else:
            path = self._path(start)
            stack = [s.iter_from(i + 1) if is_open else iter(()) for _, s, i, is_open in path]
            if path[-1][3] and self._opens(start):
                assert isinstance(start, CategoryEntry)
                stack.append(iter(start.children))
        for entry in self._walk_forward(stack):
            if not selected_only or self.is_entry_selected(entry):
                yield entry

    def entries_backward(
        self, selected_only: bool = False, *, start: ViewEntry | None = None
    ) -> Iterator[ViewEntry]:
        """Listed entries in reverse view order, from the last (or from before ``start``)."""
        if start is None:
            top = self._top
            stack: _BackStack = [(reversed(top.children), None)] if self._opens(top) else []
        else:
            stack = []
            listed = True  # whether the current level's owner is itself listed-or-walked
            for owner, siblings, index, is_open in self._path(start):
                # Walking backwards, a category comes after its earlier children.
                stack.append(
                    (
                        siblings.iter_before(index) if is_open else iter(()),
                        owner if listed and owner is not self._top else None,
                    )
                )
                listed = is_open
        for entry in self._walk_backward(stack):
            if not selected_only or self.is_entry_selected(entry):
                yield entry

    def _path(
        self, entry: ViewEntry
    ) -> list[tuple[CategoryEntry, SortedKeyList[ViewEntry], int, bool]]:
        """``(owner, siblings, index, walked)`` per level from the top down to ``entry``.

        ``walked``: the owner and every category above it open, so these siblings are listed.
        """
        if not entry.in_view() or not self._under_top(entry):
            raise ViewDefinitionError("the start entry is not in this navigator's part of the view")
        levels: list[tuple[CategoryEntry, SortedKeyList[ViewEntry], int]] = []
        node = entry
        while node is not self._top:
            parent = node.parent
            assert parent is not None
            levels.append((parent, parent.children, parent.children.index(node.sort_key)))
            node = parent
        levels.reverse()
        path = []
        walked = True
        for owner, siblings, index in levels:
            walked = walked and self._opens(owner)
            path.append((owner, siblings, index, walked))
        return path

    def _walk_forward(self, stack: _Stack) -> Iterator[ViewEntry]:
        while stack:
            for node in stack[-1]:
                if self._shown(node):
                    yield node
                if self._opens(node):
                    assert isinstance(node, CategoryEntry)
                    stack.append(iter(node.children))
                    break
            else:
                stack.pop()

    def _walk_backward(self, stack: _BackStack) -> Iterator[ViewEntry]:
        while stack:
            siblings, owner = stack[-1]
            for node in siblings:
                if self._opens(node):
                    assert isinstance(node, CategoryEntry)
                    stack.append((reversed(node.children), node))
                    break
                if self._shown(node):
                    yield node
            else:
                stack.pop()
                if owner is not None and self._shown(owner):
                    yield owner

    # -- selection ---------------------------------------------------------------------------
    def select(self, origin: str, doc_id: str, select_parent_categories: bool = False) -> Navigator:
        """Select a document (or a category: ``CATEGORY_ORIGIN`` and its id)."""
        self._mark((origin, doc_id), True)
        if select_parent_categories:
            for entry in self._entries_of(origin, doc_id):
                node = entry.parent
                while node is not None and not node.is_root():
                    self._mark(node.ident, True)
                    node = node.parent
        return self

    def deselect(self, origin: str, doc_id: str) -> Navigator:
        self._mark((origin, doc_id), False)
        return self

    def select_all_entries(self) -> Navigator:
        self._select_all, self._selection = True, set()
        return self

    def deselect_all_entries(self) -> Navigator:
        self._select_all, self._selection = False, set()
        return self

    def is_selected(self, origin: str, doc_id: str) -> bool:
        return ((origin, doc_id) in self._selection) != self._select_all

    def is_entry_selected(self, entry: ViewEntry) -> bool:
        return self.is_selected(entry.origin, entry.doc_id)

    def _mark(self, ident: tuple[str, str], selected: bool) -> None:
        if selected != self._select_all:
            self._selection.add(ident)
        else:
            self._selection.discard(ident)

    def _entries_of(self, origin: str, doc_id: str) -> list[ViewEntry]:
        if origin == CATEGORY_ORIGIN:
            category = self._view.get_category(doc_id)
            return [category] if category is not None else []
        return list(self._view.get_entries(origin, doc_id))

    # -- children ----------------------------------------------------------------------------
    def child_entries(self, entry: ViewEntry, descending: bool = False) -> list[ViewEntry]:
        """The children of ``entry`` this navigator may list (ignoring expansion)."""
        if not isinstance(entry, CategoryEntry) or not self._may_see(entry):
            return []
        children = reversed(entry.children) if descending else iter(entry.children)
        return [c for c in children if self._shown(c)]

    def child_categories(self, entry: ViewEntry, descending: bool = False) -> list[ViewEntry]:
        return [c for c in self.child_entries(entry, descending) if c.is_category()]

    def child_documents(self, entry: ViewEntry, descending: bool = False) -> list[ViewEntry]:
        return [c for c in self.child_entries(entry, descending) if c.is_document()]


class NavigatorBuilder:
    """``VirtualViewFactory.create_navigator(view)``: options, then ``build()``."""

    def __init__(self, view: VirtualView) -> None:
        self._view = view
        self._top: CategoryEntry | None = None
        self._categories_only = False
        self._documents_only = False
        self._access: AccessCallback | None = None
        self._expand_level: float = 0

    def categories_only(self) -> NavigatorBuilder:
        self._categories_only = True
        return self

    def documents_only(self) -> NavigatorBuilder:
        self._documents_only = True
        return self

    def with_access_callback(self, callback: AccessCallback) -> NavigatorBuilder:
        self._access = callback
        return self

    def from_category(self, category: str | Sequence[Any] | CategoryEntry) -> NavigatorBuilder:
        """Navigate below one category only (its descendants; positions stay the view's)."""
        found = (
            category if isinstance(category, CategoryEntry) else self._view.find_category(category)
        )
        if found is None:
            raise ViewDefinitionError(f"no category {category!r} in the view")
        self._top = found
        return self

    def expand_all(self) -> NavigatorBuilder:
        self._expand_level = math.inf
        return self

    def collapse_all(self) -> NavigatorBuilder:
        self._expand_level = 0
        return self

    def expand_to_level(self, level: int) -> NavigatorBuilder:
        self._expand_level = max(0, level)
        return self

    def build(self) -> Navigator:
        """A navigator, collapsed unless asked otherwise, with no current entry yet."""
        return Navigator(
            self._view,
            top=self._top,
            categories_only=self._categories_only,
            documents_only=self._documents_only,
            access=self._access,
            expand_level=self._expand_level,
        )
