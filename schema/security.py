"""After each operation, what the caller was refused is recorded as security events (one per
distinct refusal, not one per list row)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from strawberry.extensions import SchemaExtension

from api.auth.models import SecurityEventKind
from api.auth.security import SecurityEventRecord, record_security_events
from schema.context import Context


class RecordDenials(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:
        yield
        context = self.execution_context.context
        if not isinstance(context, Context) or not context.denials:
            return
        events = [
            SecurityEventRecord(SecurityEventKind.FORBIDDEN, attempted, f"lacks {capability.value}")
            for capability, attempted in sorted(context.denials)
        ]
        context.denials.clear()
        await record_security_events(context.session_factory, context.actor(), events)
