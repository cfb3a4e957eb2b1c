"""Navigating a view: expand/collapse, first/last/next/prev/sibling/parent/child, positions,
forward and backward iteration, categories-only and documents-only, selection, access."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mindood.views import (
    CATEGORY_ORIGIN,
    Navigator,
    ViewEntry,
    VirtualView,
    VirtualViewFactory,
)
from tests.view_helpers import BRANCH, HQ, DictProvider, employee, employees_builder


def _view() -> VirtualView:
    hq, branch = DictProvider("hq"), DictProvider("branch")
    for i, row in enumerate(HQ):
        hq.put(f"h{i}", employee(row))
    for i, row in enumerate(BRANCH):
        branch.put(f"b{i}", employee(row))
    view = employees_builder().with_data_provider(hq).with_data_provider(branch).build()
    for origin, source in (("hq", hq), ("branch", branch)):
        _apply_all(view, origin, source)
    return view


def _apply_all(view: VirtualView, origin: str, source: DictProvider) -> None:
    from mindood.views import ViewChange

    change = ViewChange(origin)
    for doc_id in source.pending:
        change.additions[doc_id] = {
            c.name: source.docs[doc_id].get(c.name) for c in view.columns.all
        }
    view.apply_changes(change)
    source.commit(change)


def _nav(view: VirtualView) -> Navigator:
    return VirtualViewFactory.create_navigator(view).build()


def _positions(nav: Navigator, backward: bool = False) -> list[str]:
    entries = nav.entries_backward() if backward else nav.entries_forward()
    return [e.get_position_str() for e in entries]


def _at(nav: Navigator) -> str | None:
    entry = nav.get_current_entry()
    return entry.get_position_str() if entry is not None else None


def _entry(view: VirtualView, position: str) -> ViewEntry:
    entry = view.entry_at(position)
    assert entry is not None, position
    return entry


ALL = [
    "1", "1.1", "1.1.1", "1.1.2", "1.2", "1.2.1",
    "2", "2.1", "2.1.1", "2.1.2", "2.2", "2.2.1",
    "3", "3.1", "3.1.1",
]  # fmt: skip


def test_expand_and_collapse_states() -> None:
    view = _view()
    nav = _nav(view)
    assert _positions(nav) == ["1", "2", "3"]  # a navigator starts collapsed
    nav.expand_all()
    assert _positions(nav) == ALL
    assert _positions(nav, backward=True) == ALL[::-1]
    nav.expand_to_level(1)
    assert _positions(nav) == ["1", "1.1", "1.2", "2", "2.1", "2.2", "3", "3.1"]
    nav.collapse_all()
    nav.expand(_entry(view, "2"))
    assert _positions(nav) == ["1", "2", "2.1", "2.2", "3"]
    assert nav.expand_pos("2.1")
    assert _positions(nav) == ["1", "2", "2.1", "2.1.1", "2.1.2", "2.2", "3"]
    nav.collapse(_entry(view, "2"))
    assert _positions(nav) == ["1", "2", "3"]
    nav.expand(_entry(view, "2"))  # 2.1 stayed open underneath
    assert _positions(nav) == ["1", "2", "2.1", "2.1.1", "2.1.2", "2.2", "3"]
    nav.expand_all().collapse(_entry(view, "1"))
    assert _positions(nav) == ["1", *ALL[6:]]
    assert not nav.is_expanded(_entry(view, "1")) and nav.is_expanded(_entry(view, "2"))
    assert not nav.expand_pos("1.1.1") and not nav.collapse_pos("7")  # documents, nothing


def test_stepping_across_expand_states() -> None:
    view = _view()
    nav = _nav(view)
    assert nav.get_current_entry() is None and not nav.goto_next()
    assert nav.goto_first() and _at(nav) == "1"
    assert nav.goto_next() and _at(nav) == "2"
    assert nav.goto_last() and _at(nav) == "3"
    assert not nav.goto_next()
    assert nav.goto_prev() and _at(nav) == "2"
    assert not nav.goto_first_child()  # collapsed

    nav.expand_all()
    assert nav.goto_first_child() and _at(nav) == "2.1"
    assert nav.goto_first_child() and _at(nav) == "2.1.1"
    assert not nav.goto_first_child()  # a document
    assert nav.goto_next_sibling() and _at(nav) == "2.1.2"
    assert not nav.goto_next_sibling()
    assert nav.goto_prev_sibling() and _at(nav) == "2.1.1"
    assert nav.goto_parent() and _at(nav) == "2.1"
    assert nav.goto_next_sibling() and _at(nav) == "2.2"
    assert nav.goto_parent() and _at(nav) == "2"
    assert not nav.goto_parent()  # top level: the root is not an entry
    assert nav.goto_last() and _at(nav) == "3.1.1"
    visited = []
    while nav.goto_prev():
        visited.append(_at(nav))
    assert visited == ALL[-2::-1]
    assert _at(nav) == "1"
    while nav.goto_next():
        pass
    assert _at(nav) == "3.1.1"

    # Collapse the category holding the current entry: stepping goes on from where it stood,
    # to what is listed.
    assert nav.goto_pos("2.1.2")
    nav.collapse(_entry(view, "2"))
    assert nav.goto_next() and _at(nav) == "3"
    assert nav.goto_pos("2.1.2", reveal=True)
    nav.collapse(_entry(view, "2"))
    assert nav.goto_prev() and _at(nav) == "2"


def test_goto_pos_and_reveal() -> None:
    view = _view()
    nav = _nav(view)
    assert not nav.goto_pos("2.1.2")  # collapsed: not listed
    assert nav.goto_pos("2.1.2", reveal=True) and _at(nav) == "2.1.2"
    assert _positions(nav) == ["1", "2", "2.1", "2.1.1", "2.1.2", "2.2", "3"]
    assert nav.goto_pos((3, 1), reveal=True) and _at(nav) == "3.1"
    for bad in ("9", "1.9", "0", "x", "", "1.1.1.1"):
        assert not nav.goto_pos(bad)
    assert _at(nav) == "3.1"
    entry = _entry(view, "1.2.1")
    assert (entry.get_level(), entry.get_position(), entry.get_sibling_count()) == (2, (1, 2, 1), 1)


def test_start_points_of_iteration() -> None:
    view = _view()
    nav = _nav(view).expand_all()
    start = _entry(view, "2.1")
    assert [e.get_position_str() for e in nav.entries_forward(start=start)] == ALL[8:]
    assert [e.get_position_str() for e in nav.entries_backward(start=start)] == ALL[6::-1]


def test_categories_only_and_documents_only() -> None:
    view = _view()
    cats = VirtualViewFactory.create_navigator(view).categories_only().expand_all().build()
    assert _positions(cats) == [p for p in ALL if p.count(".") < 2]
    assert cats.goto_pos("2.1") and not cats.goto_first_child()
    cats.collapse_all()
    assert _positions(cats) == ["1", "2", "3"]

    docs = VirtualViewFactory.create_navigator(view).documents_only().build()
    names = [e.get_column_value("lastName") for e in docs.entries_forward()]
    assert names == ["Brown", "Johnson", "Davis", "Miller", "Smith", "Adams", "Wilson"]
    assert docs.goto_first() and _at(docs) == "1.1.1"
    assert docs.goto_next() and _at(docs) == "1.1.2"
    assert docs.goto_next() and _at(docs) == "1.2.1"  # across categories
    assert not docs.goto_parent()  # categories are not listed
    assert docs.goto_last() and _at(docs) == "3.1.1"
    assert [e.get_position_str() for e in docs.entries_backward()][:2] == ["3.1.1", "2.2.1"]


def test_from_category() -> None:
    view = _view()
    sales = VirtualViewFactory.create_navigator(view).from_category("Sales").build()
    assert _positions(sales) == ["2.1", "2.2"]  # collapsed below the top; positions stay
    sales.expand_to_level(1)
    assert _positions(sales) == ["2.1", "2.1.1", "2.1.2", "2.2", "2.2.1"]
    assert not sales.goto_pos("1.1")  # outside
    assert sales.goto_pos("2.1") and not sales.goto_parent()
    year = VirtualViewFactory.create_navigator(view).from_category("Sales\\2024").build()
    assert [e.get_column_value("lastName") for e in year.entries_forward()] == ["Miller", "Smith"]


def test_selection() -> None:
    view = _view()
    nav = _nav(view).expand_all()
    smith = next(e for e in nav.entries_forward() if e.get_column_value("lastName") == "Smith")
    nav.select(smith.origin, smith.doc_id, select_parent_categories=True)
    assert nav.is_selected(*smith.ident)
    assert [e.get_position_str() for e in nav.entries_forward(selected_only=True)] == [
        "2",
        "2.1",
        "2.1.2",
    ]
    nav.deselect(CATEGORY_ORIGIN, _entry(view, "2").doc_id)
    assert _positions_selected(nav) == ["2.1", "2.1.2"]
    nav.select_all_entries().deselect(*smith.ident)
    assert _positions_selected(nav) == [p for p in ALL if p != "2.1.2"]
    assert [e.get_position_str() for e in nav.entries_backward(selected_only=True)][:2] == [
        "3.1.1",
        "3.1",
    ]
    nav.deselect_all_entries()
    assert _positions_selected(nav) == []


def _positions_selected(nav: Navigator) -> list[str]:
    return [e.get_position_str() for e in nav.entries_forward(selected_only=True)]


def test_access_callback_hides_entries_and_emptied_categories() -> None:
    view = _view()

    def branch_only(entry: ViewEntry) -> bool:
        return entry.is_category() or entry.origin == "branch"

    nav = VirtualViewFactory.create_navigator(view).with_access_callback(branch_only).build()
    nav.expand_all()
    # Engineering\2024 and Sales\2023 hold only HQ people: hidden, and nothing is renumbered.
    assert _positions(nav) == ["1", "1.2", "1.2.1", "2", "2.1", "2.1.1", "3", "3.1", "3.1.1"]
    assert _positions(nav, backward=True) == _positions(nav)[::-1]
    assert not nav.goto_pos("1.1") and not nav.goto_pos("2.1.2")
    assert nav.goto_pos("1.2") and nav.goto_prev() and _at(nav) == "1"
    assert nav.goto_pos("2.1.1") and not nav.goto_next_sibling()
    assert nav.goto_pos("1") and nav.goto_first_child() and _at(nav) == "1.2"

    def no_sales(entry: ViewEntry) -> bool:  # a category refused outright hides its subtree
        return bool(entry.get_column_value("department") != "Sales")

    nav = VirtualViewFactory.create_navigator(view).with_access_callback(no_sales).build()
    assert _positions(nav.expand_all()) == [p for p in ALL if not p.startswith("2")]
    nobody = VirtualViewFactory.create_navigator(view).with_access_callback(lambda e: False).build()
    assert _positions(nobody.expand_all()) == [] and not nobody.goto_first()


@settings(max_examples=60, deadline=None)
@given(
    toggles=st.lists(st.sampled_from(["1", "1.1", "1.2", "2", "2.1", "2.2", "3", "3.1"])),
    level=st.integers(0, 3),
    hide=st.sets(st.sampled_from(["h0", "h1", "h2", "h3", "b0", "b1", "b2"])),
)
def test_steps_and_iteration_agree(toggles: list[str], level: int, hide: set[str]) -> None:
    """Whatever the state, next/prev chains, forward/backward walks and starts all agree."""
    view = _view()
    nav = (
        VirtualViewFactory.create_navigator(view)
        .with_access_callback(lambda e: e.doc_id not in hide)
        .expand_to_level(level)
        .build()
    )
    for position in toggles:
        entry = _entry(view, position)
        (nav.collapse if nav.is_expanded(entry) else nav.expand)(entry)
    forward = list(nav.entries_forward())
    assert list(nav.entries_backward()) == forward[::-1]
    chain: list[ViewEntry] = []
    if nav.goto_first():
        chain.append(nav.get_current_entry())  # type: ignore[arg-type]
        while nav.goto_next():
            chain.append(nav.get_current_entry())  # type: ignore[arg-type]
    assert chain == forward
    for i, entry in enumerate(forward):
        assert nav.is_visible(entry)
        assert list(nav.entries_forward(start=entry)) == forward[i + 1 :]
        assert list(nav.entries_backward(start=entry)) == forward[:i][::-1]
    # From any entry, listed or not, the walks go on with the listed entries after/before it.
    everything = list(_nav(view).expand_all().entries_forward())
    order = {id(e): i for i, e in enumerate(everything)}
    for i, entry in enumerate(everything):
        after = [e for e in forward if order[id(e)] > i]
        before = [e for e in forward if order[id(e)] < i][::-1]
        assert list(nav.entries_forward(start=entry)) == after
        assert list(nav.entries_backward(start=entry)) == before
