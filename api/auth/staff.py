"""Staff members: the owner can override a subject's role or revoke it; it takes effect on the
subject's next request (every request reads this table, by primary key)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.audit.record import Actor, record_audit
from api.auth.models import StaffMember
from api.auth.principal import Principal
from api.auth.roles import Role
from api.common.batch import table_of
from api.common.reads import DriverReads
from api.db import utcnow
from api.errors import Invalid, Unauthenticated

SEEN_PRECISION = timedelta(minutes=5)  # last_seen_at is written at most this often
_STAFF = table_of(StaffMember)
_STAFF_STATUS = select(_STAFF.c.role_override, _STAFF.c.revoked_at, _STAFF.c.last_seen_at).where(
    _STAFF.c.subject == bindparam("subject")
)


def _snapshot(member: StaffMember | None) -> dict[str, object]:
    if member is None:
        return {"role_override": None, "revoked_at": None}
    return {
        "role_override": member.role_override,
        "revoked_at": member.revoked_at.isoformat() if member.revoked_at else None,
    }


async def apply_staff_policy(
    reads: DriverReads, session_factory: async_sessionmaker[AsyncSession], principal: Principal
) -> Principal:
    """The principal as the owner's decisions make it: revoked → UNAUTHENTICATED, overridden role
    applied. Read on every request (never cached), so a change applies to the next request."""
    rows = await reads.rows(_STAFF_STATUS, {"subject": principal.subject})
    member = rows[0] if rows else None
    now = utcnow()
    if member is not None and member.revoked_at is not None:
        raise Unauthenticated(f"access for {principal.subject} has been revoked")
    if member is None or member.last_seen_at is None or now - member.last_seen_at > SEEN_PRECISION:
        stmt = insert(StaffMember).values(subject=principal.subject, updated_by="login", last_seen_at=now)
        async with session_factory() as session:
            await session.execute(
                stmt.on_conflict_do_update(index_elements=[StaffMember.subject], set_={"last_seen_at": now})
            )
            await session.commit()
    if member is not None and member.role_override:
        return Principal.staff(principal.subject, Role(member.role_override))
    return principal


async def _member_for_update(session: AsyncSession, subject: str) -> StaffMember | None:
    subject = subject.strip()
    if not subject:
        raise Invalid("`subject` must not be empty", field="subject")
    return await session.get(StaffMember, subject, with_for_update=True)


async def set_staff_role(session: AsyncSession, actor: Actor, subject: str, role: Role | None) -> StaffMember:
    member = await _member_for_update(session, subject)
    before = _snapshot(member)
    if member is None:
        member = StaffMember(subject=subject.strip(), updated_by=actor.subject)
        session.add(member)
    member.role_override = role.value if role else None
    member.updated_by = actor.subject
    await session.flush()
    await record_audit(
        session, actor, "setStaffRole", "StaffMember", member.subject, before=before, after=_snapshot(member)
    )
    return member


async def revoke_staff(session: AsyncSession, actor: Actor, subject: str, *, restore: bool = False) -> StaffMember:
    member = await _member_for_update(session, subject)
    if not restore and subject.strip() == actor.subject:
        raise Invalid("you cannot revoke your own access", field="subject")
    before = _snapshot(member)
    if member is None:
        member = StaffMember(subject=subject.strip(), updated_by=actor.subject)
        session.add(member)
    member.revoked_at = None if restore else (member.revoked_at or utcnow())
    member.updated_by = actor.subject
    await session.flush()
    action = "restoreStaff" if restore else "revokeStaff"
    await record_audit(session, actor, action, "StaffMember", member.subject, before=before, after=_snapshot(member))
    return member


async def list_staff(session: AsyncSession) -> list[StaffMember]:
    stmt = select(StaffMember).order_by(StaffMember.subject)
    return list((await session.execute(stmt)).scalars())
