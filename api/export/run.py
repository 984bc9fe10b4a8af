"""Running an export: who may, which columns, and one consistent database snapshot.

Every export leaves an audit entry (`export.<dataset>`: who, the filters, the format, the columns
withheld), committed before its first row leaves: data that leaves the back office in bulk is as
traceable as a change.

An export reads in a REPEATABLE READ, READ ONLY transaction: its count (the CLI's progress
total) and its rows see the same data however long the stream takes, and `as_of` is the
transaction's start (PostgreSQL's `now()`): every change committed before it is in the file.
A dataset computed from stored figures (revenue) reports its own, older `as_of` instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.audit.record import Actor, record_audit
from api.auth.permissions import Capability, forbidden
from api.export.dataset import Column, Dataset, Rows
from api.export.encode import Format

SNAPSHOT_OPTIONS = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}


def required_capabilities(dataset: Dataset[Any, Any]) -> tuple[Capability, ...]:
    """Reading what is exported first (its FORBIDDEN error names the roles that could), then exporting."""
    return (*dataset.read, Capability.DATA_EXPORT)


def check_allowed(dataset: Dataset[Any, Any], capabilities: frozenset[Capability]) -> None:
    for capability in required_capabilities(dataset):
        if capability not in capabilities:
            raise forbidden(capability, f"export {dataset.noun}")


@dataclass(frozen=True, slots=True)
class ExportJob:
    dataset: Dataset[Any, Any]
    filter: Any
    columns: tuple[Column[Any], ...]
    withheld: tuple[str, ...]
    capabilities: frozenset[Capability]
    params: tuple[tuple[str, str], ...] = ()  # as given, for the audit entry

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]


def plan_export(
    dataset: Dataset[Any, Any], params: Sequence[tuple[str, str]], capabilities: frozenset[Capability]
) -> ExportJob:
    """The export a caller holding `capabilities` gets (checked already); Invalid names a bad parameter."""
    flt = dataset.parse(params)
    columns, withheld = dataset.permitted(capabilities)
    return ExportJob(dataset, flt, columns, withheld, capabilities, tuple(params))


async def record_export(
    session_factory: async_sessionmaker[AsyncSession], actor: Actor, job: ExportJob, kind: Format
) -> None:
    """The export's audit entry, in its own transaction (the export itself only reads)."""
    facts = {
        "format": kind,
        "filters": dict(job.params),
        "columns": len(job.columns),
        "withheld": list(job.withheld),
    }
    async with session_factory() as session, session.begin():
        await record_audit(session, actor, f"export.{job.dataset.name}", "Export", job.dataset.name, after=facts)


@asynccontextmanager
async def open_export(session_factory: async_sessionmaker[AsyncSession], job: ExportJob) -> AsyncIterator[Rows]:
    async with session_factory() as session:
        await session.connection(execution_options=SNAPSHOT_OPTIONS)
        snapshot_at = (await session.execute(select(func.now()))).scalar_one()
        yield await job.dataset.open(session, job.filter, job.columns, job.capabilities, snapshot_at)
