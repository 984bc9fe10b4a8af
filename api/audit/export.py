"""The audit-entries export: `GET /exports/audit-entries.csv|json`, `ledgerline export audit-entries`.

The parameters are those of the GraphQL `auditEntries(filter:)` (actor, action, targetType,
targetId, from, to) and select rows with the same SQL conditions, oldest first. `ip` and
`user_agent` only for callers who may read them (AUDIT_NETWORK_READ), the chain hashes only for
those who may read the chain (AUDIT_CHAIN_READ); otherwise the columns are not even selected.
"""

from __future__ import annotations

from starlette.routing import Route

from api.audit.models import AuditEntry
from api.audit.service import AuditFilter, audit_conditions
from api.auth.permissions import Capability
from api.export.dataset import BATCH_SIZE, Param, TableDataset, fields, range_params
from api.export.http import dataset_routes
from api.export.params import Params
from api.runtime import Runtime

__all__ = ["AUDIT_ENTRIES", "BATCH_SIZE", "CSV_PATH", "JSON_PATH", "audit_export_routes"]

CSV_PATH = "/exports/audit-entries.csv"
JSON_PATH = "/exports/audit-entries.json"

PARAMS = [
    Param("actor", "A subject (`finance@example.com`) or a role (`finance`)."),
    Param("action", "The mutation's name, e.g. `refundInvoice`."),
    Param("targetType", "e.g. `Invoice`."),
    Param("targetId", "The target's id."),
    *range_params("Occurred"),
]


def parse_filter(params: Params) -> AuditFilter:
    return AuditFilter(
        actor=params.text("actor"),
        action=params.text("action"),
        target_type=params.text("targetType"),
        target_id=params.text("targetId"),
        occurred=params.date_range(preset="preset"),
    )


AUDIT_ENTRIES: TableDataset[AuditFilter] = TableDataset(
    name="audit-entries",
    noun="audit entries",
    read=[Capability.AUDIT_READ],
    params=PARAMS,
    parse=parse_filter,
    columns=[
        *fields(
            AuditEntry.id,
            AuditEntry.occurred_at,
            AuditEntry.actor_subject,
            AuditEntry.actor_role,
            AuditEntry.api_key_id,
            AuditEntry.action,
            AuditEntry.target_type,
            AuditEntry.target_id,
            AuditEntry.outcome,
            AuditEntry.request_id,
            AuditEntry.before,
            AuditEntry.after,
        ),
        *fields(AuditEntry.ip, AuditEntry.user_agent, capability=Capability.AUDIT_NETWORK_READ),
        *fields(AuditEntry.prev_hash, AuditEntry.entry_hash, capability=Capability.AUDIT_CHAIN_READ),
    ],
    model=AuditEntry,
    conditions=lambda flt, _: audit_conditions(flt),
    order=[AuditEntry.occurred_at, AuditEntry.id],
)


def audit_export_routes(runtime: Runtime) -> list[Route]:
    """The two audit export routes (the application mounts every export: api.export.registry)."""
    return dataset_routes(runtime, AUDIT_ENTRIES)
