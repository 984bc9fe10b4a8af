from __future__ import annotations

from datetime import datetime, timedelta

import strawberry

from api.auth import apikeys, staff
from api.auth.permissions import Capability
from api.auth.roles import Role
from schema.access.types import ApiKey, StaffMember
from schema.context import Info
from schema.mutations import UserError, run_mutation
from schema.permissions import RoleEnum, guarded
from schema.scalars import parse_id


@strawberry.input
class SetStaffRoleInput:
    subject: str
    role: RoleEnum | None = strawberry.field(description="null removes the override (the token's role applies).")  # type: ignore[valid-type]


@strawberry.input
class StaffSubjectInput:
    subject: str


@strawberry.type
class StaffMemberPayload:
    staff_member: StaffMember | None
    user_errors: list[UserError]


@strawberry.input
class CreateApiKeyInput:
    name: str
    scopes: list[str] = strawberry.field(
        description="usage:write, customers:read, customers:write, subscriptions:write, invoices:read"
    )
    expires_at: datetime | None = None


@strawberry.input
class ApiKeyIdInput:
    id: strawberry.ID


@strawberry.type
class ApiKeyPayload:
    api_key: ApiKey | None
    user_errors: list[UserError]


@strawberry.type
class ApiKeySecretPayload:
    api_key: ApiKey | None
    secret: str | None = strawberry.field(description="The whole key, `llk_…`: shown only in this response.")
    user_errors: list[UserError]


@strawberry.type
class AccessMutations:
    @guarded(Capability.ACCESS_ADMIN, description="Override a staff subject's role (takes effect on its next request).")
    async def set_staff_role(self, info: Info, input: SetStaffRoleInput) -> StaffMemberPayload | None:
        role: Role | None = input.role
        outcome = await run_mutation(info, lambda s, actor: staff.set_staff_role(s, actor, input.subject, role))
        member = StaffMember.from_model(outcome.value) if outcome.value else None
        return StaffMemberPayload(staff_member=member, user_errors=outcome.user_errors)

    @guarded(Capability.ACCESS_ADMIN, description="Revoke a staff subject: its tokens get UNAUTHENTICATED.")
    async def revoke_staff(self, info: Info, input: StaffSubjectInput) -> StaffMemberPayload | None:
        outcome = await run_mutation(info, lambda s, actor: staff.revoke_staff(s, actor, input.subject))
        member = StaffMember.from_model(outcome.value) if outcome.value else None
        return StaffMemberPayload(staff_member=member, user_errors=outcome.user_errors)

    @guarded(Capability.ACCESS_ADMIN, description="Undo a revocation.")
    async def restore_staff(self, info: Info, input: StaffSubjectInput) -> StaffMemberPayload | None:
        outcome = await run_mutation(info, lambda s, actor: staff.revoke_staff(s, actor, input.subject, restore=True))
        member = StaffMember.from_model(outcome.value) if outcome.value else None
        return StaffMemberPayload(staff_member=member, user_errors=outcome.user_errors)

    @guarded(Capability.ACCESS_ADMIN, description="Create an API key; the secret is returned once.")
    async def create_api_key(self, info: Info, input: CreateApiKeyInput) -> ApiKeySecretPayload | None:
        outcome = await run_mutation(
            info, lambda s, actor: apikeys.create_api_key(s, actor, input.name, input.scopes, input.expires_at)
        )
        issued = outcome.value
        return ApiKeySecretPayload(
            api_key=ApiKey.from_model(issued.key) if issued else None,
            secret=issued.secret if issued else None,
            user_errors=outcome.user_errors,
        )

    @guarded(Capability.ACCESS_ADMIN, description="Revoke an API key at once.")
    async def revoke_api_key(self, info: Info, input: ApiKeyIdInput) -> ApiKeyPayload | None:
        key_id = parse_id(input.id, "ApiKey", "input.id")
        outcome = await run_mutation(info, lambda s, actor: apikeys.revoke_api_key(s, actor, key_id))
        return ApiKeyPayload(
            api_key=ApiKey.from_model(outcome.value) if outcome.value else None, user_errors=outcome.user_errors
        )

    @guarded(
        Capability.ACCESS_ADMIN,
        description="Issue a new secret for a key; the old one keeps working for API_KEY_ROTATION_GRACE_HOURS.",
    )
    async def rotate_api_key(self, info: Info, input: ApiKeyIdInput) -> ApiKeySecretPayload | None:
        key_id = parse_id(input.id, "ApiKey", "input.id")
        grace = timedelta(hours=info.context.settings.api_key_rotation_grace_hours)
        outcome = await run_mutation(info, lambda s, actor: apikeys.rotate_api_key(s, actor, key_id, grace))
        issued = outcome.value
        return ApiKeySecretPayload(
            api_key=ApiKey.from_model(issued.key) if issued else None,
            secret=issued.secret if issued else None,
            user_errors=outcome.user_errors,
        )
