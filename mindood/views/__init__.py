"""Virtual views: categorized, sorted, totalled trees of documents from one or more databases.

Build one with ``VirtualViewFactory.create_view()``, keep it current with ``await view.update()``
(only documents changed since the last update are read), and read it through a navigator from
``VirtualViewFactory.create_navigator(view)``. ``view.export_state()`` and
``restore_state()`` carry a built view across a restart without reading its documents again.
"""

from mindood.views.builder import ViewBuilder, VirtualViewFactory
from mindood.views.columns import (
    CategorizationStyle,
    ColumnRole,
    ColumnSorting,
    TotalMode,
    ValueFunction,
    ViewColumn,
    ViewDefinitionError,
)
from mindood.views.entries import CATEGORY_ORIGIN, CategoryEntry, DocumentEntry, ViewEntry
from mindood.views.navigator import AccessCallback, Navigator, NavigatorBuilder
from mindood.views.providers import (
    DataProvider,
    DocFilter,
    MindooDBDataProvider,
    ProviderStats,
    ViewChange,
)
from mindood.views.state import OriginState, ViewState, ViewStateError
from mindood.views.tree import ViewStats
from mindood.views.view import UpdateProgress, UpdateResult, VirtualView

__all__ = [
    "CATEGORY_ORIGIN",
    "AccessCallback",
    "CategorizationStyle",
    "CategoryEntry",
    "ColumnRole",
    "ColumnSorting",
    "DataProvider",
    "DocFilter",
    "DocumentEntry",
    "MindooDBDataProvider",
    "Navigator",
    "NavigatorBuilder",
    "OriginState",
    "ProviderStats",
    "TotalMode",
    "UpdateProgress",
    "UpdateResult",
    "ValueFunction",
    "ViewBuilder",
    "ViewChange",
    "ViewColumn",
    "ViewDefinitionError",
    "ViewEntry",
    "ViewState",
    "ViewStateError",
    "ViewStats",
    "VirtualView",
    "VirtualViewFactory",
]
