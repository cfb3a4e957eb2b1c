"""``VirtualViewFactory.create_view()``: the fluent builder of a view, as in the spec.

    view = await (
        VirtualViewFactory.create_view()
        .add_category_column("department", sorting=ColumnSorting.ASCENDING)
        .add_category_column("year", sorting=ColumnSorting.DESCENDING)
        .add_sorted_column("lastName", ColumnSorting.ASCENDING)
        .add_total_column("salary", TotalMode.SUM)
        .with_db("employees", employee_db, lambda d: d.get_data().get("type") == "employee")
        .build_and_update()
    )

Column order is the order of the calls; value functions see the values of earlier columns.
"""

from __future__ import annotations

from mindood.db import MindooDB
from mindood.views.columns import (
    CategorizationStyle,
    ColumnRole,
    ColumnSet,
    ColumnSorting,
    TotalMode,
    ValueFunction,
    ViewColumn,
    ViewDefinitionError,
)
from mindood.views.navigator import NavigatorBuilder
from mindood.views.providers import DataProvider, DocFilter, MindooDBDataProvider
from mindood.views.view import VirtualView


class ViewBuilder:
    """Collects columns and sources; ``build()`` makes the (empty) view."""

    def __init__(self) -> None:
        self._columns: list[ViewColumn] = []
        self._providers: list[DataProvider] = []
        self._style = CategorizationStyle.DOCUMENT_THEN_CATEGORY

    def add_column(self, column: ViewColumn) -> ViewBuilder:
        self._columns.append(column)
        return self

    def add_category_column(
        self,
        name: str,
        *,
        sorting: ColumnSorting = ColumnSorting.ASCENDING,
        value_function: ValueFunction | None = None,
        title: str | None = None,
        field: str | None = None,
    ) -> ViewBuilder:
        """Group by this column; ``NONE`` sorting means ascending (categories need an order)."""
        if sorting is ColumnSorting.NONE:
            sorting = ColumnSorting.ASCENDING
        return self.add_column(
            ViewColumn(
                name, ColumnRole.CATEGORY, sorting, TotalMode.NONE, title, field, value_function
            )
        )

    def add_sorted_column(
        self,
        name: str,
        sorting: ColumnSorting = ColumnSorting.ASCENDING,
        *,
        value_function: ValueFunction | None = None,
        title: str | None = None,
        field: str | None = None,
    ) -> ViewBuilder:
        """Order documents within their category by this column (in the order columns are added)."""
        return self.add_column(
            ViewColumn(
                name, ColumnRole.SORTED, sorting, TotalMode.NONE, title, field, value_function
            )
        )

    def add_display_column(
        self,
        name: str,
        *,
        value_function: ValueFunction | None = None,
        title: str | None = None,
        field: str | None = None,
    ) -> ViewBuilder:
        return self.add_column(
            ViewColumn(
                name,
                ColumnRole.DISPLAY,
                ColumnSorting.NONE,
                TotalMode.NONE,
                title,
                field,
                value_function,
            )
        )

    def add_total_column(
        self,
        name: str,
        mode: TotalMode,
        *,
        value_function: ValueFunction | None = None,
        title: str | None = None,
        field: str | None = None,
    ) -> ViewBuilder:
        """Shown on documents; categories show the SUM or AVERAGE over their documents."""
        return self.add_column(
            ViewColumn(
                name, ColumnRole.TOTAL, ColumnSorting.NONE, mode, title, field, value_function
            )
        )

    def with_categorization_style(self, style: CategorizationStyle) -> ViewBuilder:
        self._style = style
        return self

    def with_db(
        self, origin: str, db: MindooDB, doc_filter: DocFilter | None = None
    ) -> ViewBuilder:
        """Add a database (of any tenant) under ``origin``; it keeps its own change cursor."""
        return self.with_data_provider(MindooDBDataProvider(origin, db, doc_filter))

    def with_data_provider(self, provider: DataProvider) -> ViewBuilder:
        if not provider.origin:
            raise ViewDefinitionError("an origin needs a name")
        self._providers.append(provider)
        return self

    def build(self) -> VirtualView:
        """The view, empty until its first ``update()``."""
        if not self._columns:
            raise ViewDefinitionError("a view needs at least one column")
        return VirtualView(ColumnSet(self._columns, self._style), self._providers)

    async def build_and_update(self) -> VirtualView:
        view = self.build()
        await view.update()
        return view


class VirtualViewFactory:
    """Entry points: ``create_view()`` for a view, ``create_navigator(view)`` to read one."""

    @staticmethod
    def create_view() -> ViewBuilder:
        return ViewBuilder()

    @staticmethod
    def create_navigator(view: VirtualView) -> NavigatorBuilder:
        return NavigatorBuilder(view)
