"""The alerts export (`/exports/alerts.csv|json`, `ledgerline export alerts`): like the GraphQL
`alerts` list, only the kinds whose data the caller may read (see KIND_CAPABILITY)."""

from __future__ import annotations

from api.alert.models import Alert, AlertKind, AlertStatus
from api.alert.service import AlertFilter, alert_conditions, visible_kinds
from api.auth.permissions import Capability
from api.export.dataset import Param, TableDataset, fields, range_params
from api.export.params import Params

PARAMS = [
    Param(
        "kind", "Kinds, comma-separated: PAYMENT_FAILED, TRIAL_ENDING, QUOTA_THRESHOLD, CHURN_RISK, WEBHOOK_FAILURE."
    ),
    Param("status", "Statuses, comma-separated: OPEN, ACKNOWLEDGED."),
    Param("customer", "Customer id (global id or UUID)."),
    *range_params("Raised"),
]


def parse_filter(params: Params) -> AlertFilter:
    return AlertFilter(
        kinds=params.choices("kind", AlertKind),
        statuses=params.choices("status", AlertStatus),
        customer_id=params.node_id("customer", "Customer"),
        created=params.date_range(preset="preset"),
    )


ALERTS: TableDataset[AlertFilter] = TableDataset(
    name="alerts",
    noun="alerts",
    read=[Capability.CUSTOMER_READ],  # as the `alerts` query; each kind then needs its own read
    params=PARAMS,
    parse=parse_filter,
    columns=fields(
        Alert.id,
        Alert.kind,
        Alert.severity,
        Alert.status,
        Alert.customer_id,
        Alert.message,
        Alert.details,
        Alert.created_at,
        Alert.acknowledged_at,
        Alert.acknowledged_by,
    ),
    model=Alert,
    conditions=lambda flt, capabilities: alert_conditions(flt, visible_kinds(capabilities)),
    order=[Alert.created_at, Alert.id],
)
