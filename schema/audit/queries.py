from __future__ import annotations

from datetime import UTC, datetime

import strawberry

from api.audit.service import AuditFilter, count_audit_entries, list_audit_entries
from api.audit.verify import verify_chain
from api.auth.permissions import Capability
from api.common.daterange import make_range
from schema.audit.types import AuditChainStatus, AuditEntry
from schema.connections import paginate
from schema.context import Info
from schema.permissions import guarded
from schema.scalars import AfterArg, Connection, FirstArg


@strawberry.input
class AuditEntryFilterInput:
    actor: str | None = strawberry.field(default=None, description="A subject (e.g. an email) or a role.")
    action: str | None = strawberry.field(default=None, description="A mutation name, e.g. `refundInvoice`.")
    target_type: str | None = None
    target_id: str | None = None
    from_: datetime | None = strawberry.field(default=None, name="from")
    to: datetime | None = None

    def to_filter(self) -> AuditFilter:
        return AuditFilter(
            actor=self.actor,
            action=self.action,
            target_type=self.target_type,
            target_id=self.target_id,
            occurred=make_range(self.from_, self.to, field="filter"),
        )


@strawberry.type
class AuditQueries:
    @guarded(Capability.AUDIT_READ, description="The audit trail, newest first.")
    async def audit_entries(
        self,
        info: Info,
        filter: AuditEntryFilterInput | None = None,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> Connection[AuditEntry] | None:
        flt = filter.to_filter() if filter else AuditFilter()
        return await paginate(
            info,
            first,
            after,
            lambda s, p: list_audit_entries(s, flt, p),
            lambda s: count_audit_entries(s, flt),
            AuditEntry.from_model,
        )

    @guarded(
        Capability.AUDIT_CHAIN_READ,
        description="Verify the audit hash chain now (every entry; takes seconds on millions of entries).",
    )
    async def audit_chain_status(self, info: Info) -> AuditChainStatus | None:
        # a transaction of its own: the walk streams through a server-side cursor
        async with info.context.session() as session:
            status = await verify_chain(session)
        return AuditChainStatus.from_status(status, datetime.now(UTC))
