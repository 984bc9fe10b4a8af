"""Verification of the audit hash chain: every entry, in id order, against its own content and
against the entry before it.

Entries are streamed through a server-side cursor in batches, so a chain of millions of rows is
checked in constant memory. The walk runs in one statement, hence one snapshot: entries
committed while it runs are simply not part of this check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.chain import GENESIS_HASH, HASHED_FIELDS, entry_hash
from api.audit.models import AuditEntry

DEFAULT_BATCH_SIZE = 5000

CONTENT_ALTERED = "content altered"
LINK_BROKEN = "link broken"

# everything the hash covers, plus the id and both hashes; plain rows (no ORM identity map)
_COLUMNS = (
    AuditEntry.id,
    AuditEntry.prev_hash,
    AuditEntry.entry_hash,
    *(getattr(AuditEntry, name) for name in HASHED_FIELDS),
)

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class ChainStatus:
    """The result of one walk over the chain.

    `entries_checked` counts the entries examined, the broken one included. `last_hash` is the
    hash of the last entry found intact (the chain's head when `ok`; None for an empty chain or
    when the very first entry is broken): keep it somewhere else to detect later truncation."""

    ok: bool
    entries_checked: int
    first_broken_id: int | None
    reason: str | None
    last_hash: str | None


async def count_audit_entries_total(session: AsyncSession) -> int:
    """How many entries the chain has (for a progress bar's total)."""
    return int((await session.execute(select(func.count()).select_from(AuditEntry))).scalar_one())


async def verify_chain(
    session: AsyncSession,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_progress: ProgressCallback | None = None,
) -> ChainStatus:
    """Walk every entry by id: recompute its hash from its stored content (an altered entry no
    longer matches) and check that it links to the previous entry's hash (a removed or inserted
    entry breaks the link of the entry after it). Stops at the first break.

    `on_progress(entries_checked)` is called after each batch."""
    statement = select(*_COLUMNS).order_by(AuditEntry.id).execution_options(yield_per=batch_size)
    # Core rows on the session's connection: no ORM loading work per row
    result = await (await session.connection()).stream(statement)
    expected_prev = GENESIS_HASH
    previous_id: int | None = None
    last_hash: str | None = None
    checked = 0
    try:
        async for batch in result.partitions():
            for entry_id, prev_hash, stored_hash, *content in batch:
                checked += 1
                if entry_hash(prev_hash, dict(zip(HASHED_FIELDS, content, strict=True))) != stored_hash:
                    reason = f"{CONTENT_ALTERED}: the stored hash does not match the entry's content"
                    return ChainStatus(False, checked, entry_id, reason, last_hash)
                if prev_hash != expected_prev:
                    reason = (
                        f"{LINK_BROKEN}: prev_hash does not match the hash of the previous entry, {previous_id}; "
                        "an entry was removed or inserted before this one"
                        if previous_id is not None
                        else f"{LINK_BROKEN}: the first entry does not link to the genesis hash; "
                        "earlier entries were removed"
                    )
                    return ChainStatus(False, checked, entry_id, reason, last_hash)
                expected_prev = last_hash = stored_hash
                previous_id = entry_id
            if on_progress is not None:
                on_progress(checked)
    finally:
        await result.close()
    return ChainStatus(True, checked, None, None, last_hash)
