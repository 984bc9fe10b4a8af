"""Every exportable dataset, by the name in its URL and in `ledgerline export NAME`."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from api.alert.export import ALERTS
from api.audit.export import AUDIT_ENTRIES
from api.customer.export import CUSTOMERS
from api.export.dataset import Dataset
from api.export.encode import FORMATS
from api.export.http import dataset_routes, export_path
from api.invoice.export import INVOICES
from api.revenue.export import REVENUE
from api.runtime import Runtime
from api.subscription.export import SUBSCRIPTIONS

DATASETS: dict[str, Dataset[Any, Any]] = {
    dataset.name: dataset for dataset in (CUSTOMERS, SUBSCRIPTIONS, INVOICES, ALERTS, REVENUE, AUDIT_ENTRIES)
}

EXPORT_PATHS = frozenset(export_path(dataset, kind) for dataset in DATASETS.values() for kind in FORMATS)


def export_routes(runtime: Runtime) -> list[Route]:
    return [route for dataset in DATASETS.values() for route in dataset_routes(runtime, dataset)]
