"""Staff overrides and revocation, API key lifecycle, security events, audit of access changes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from api.auth.models import ApiKey
from api.auth.roles import Role
from tests.conftest import GraphQLClient, bearer

ME = "{ me { subject role kind scopes } }"


@pytest.fixture
async def client(app_factory: Callable[..., GraphQLClient], make_database: Callable[[], str]) -> GraphQLClient:
    return app_factory(make_database())


async def owner(client: GraphQLClient, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = await client.query(document, variables, role=Role.OWNER)
    assert "errors" not in body, body
    return body["data"]  # type: ignore[return-value]


async def as_token(client: GraphQLClient, headers: dict[str, str], document: str = ME) -> Any:
    return await client.post(document, headers=headers)


SET_ROLE = """mutation($s: String!, $r: Role) { setStaffRole(input: {subject: $s, role: $r}) {
  staffMember { subject roleOverride revoked } userErrors { field message code } } }"""
REVOKE = """mutation($s: String!) { revokeStaff(input: {subject: $s}) {
  staffMember { subject revoked } userErrors { field message code } } }"""
RESTORE = """mutation($s: String!) { restoreStaff(input: {subject: $s}) { staffMember { revoked } userErrors { message } } }"""
CREATE_KEY = """mutation($name: String!, $scopes: [String!]!, $exp: DateTime) {
  createApiKey(input: {name: $name, scopes: $scopes, expiresAt: $exp}) {
    secret apiKey { id prefix scopes revoked } userErrors { field message code } } }"""


async def test_role_override_applies_on_the_next_request(client: GraphQLClient) -> None:
    dana = bearer(client.settings, Role.ANALYST, subject="dana@test")
    assert (await as_token(client, dana)).json()["data"]["me"]["role"] == "ANALYST"
    data = await owner(client, SET_ROLE, {"s": "dana@test", "r": "FINANCE"})
    assert data["setStaffRole"] == {
        "staffMember": {"subject": "dana@test", "roleOverride": "FINANCE", "revoked": False},
        "userErrors": [],
    }
    assert (await as_token(client, dana)).json()["data"]["me"]["role"] == "FINANCE"
    await owner(client, SET_ROLE, {"s": "dana@test", "r": None})
    assert (await as_token(client, dana)).json()["data"]["me"]["role"] == "ANALYST"
    staff = await owner(client, "{ staffMembers { subject roleOverride lastSeenAt } }")
    assert any(m["subject"] == "dana@test" and m["lastSeenAt"] for m in staff["staffMembers"])


async def test_revoked_subject_gets_unauthenticated_until_restored(client: GraphQLClient) -> None:
    eve = bearer(client.settings, Role.SUPPORT, subject="eve@test")
    assert (await as_token(client, eve)).status_code == 200
    data = await owner(client, REVOKE, {"s": "eve@test"})
    assert data["revokeStaff"]["staffMember"] == {"subject": "eve@test", "revoked": True}
    refused = await as_token(client, eve)
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "revoked" in refused.json()["errors"][0]["message"]
    events = await owner(
        client, "{ securityEvents(filter: {kind: [AUTHENTICATION_FAILED]}) { edges { node { detail attempted } } } }"
    )
    assert any("revoked" in e["node"]["detail"] for e in events["securityEvents"]["edges"])
    await owner(client, RESTORE, {"s": "eve@test"})
    assert (await as_token(client, eve)).status_code == 200


async def test_owner_cannot_revoke_itself(client: GraphQLClient) -> None:
    data = await owner(client, REVOKE, {"s": "owner@test"})
    assert data["revokeStaff"]["staffMember"] is None
    assert data["revokeStaff"]["userErrors"] == [
        {"field": "input.subject", "message": "you cannot revoke your own access", "code": "BAD_USER_INPUT"}
    ]
    # a refused mutation writes no audit entry
    audit = await owner(client, '{ auditEntries(filter: {action: "revokeStaff"}) { totalCount } }')
    assert audit["auditEntries"]["totalCount"] == 0


async def test_api_key_lifecycle(client: GraphQLClient) -> None:
    created = (await owner(client, CREATE_KEY, {"name": "Billing sync", "scopes": ["usage:write", "customers:read"]}))[
        "createApiKey"
    ]
    secret = created["secret"]
    assert secret.startswith("llk_") and created["apiKey"]["prefix"] in secret
    assert created["apiKey"]["scopes"] == ["customers:read", "usage:write"]
    key_headers = {"Authorization": f"Bearer {secret}"}
    me = (await as_token(client, key_headers)).json()["data"]["me"]
    assert me == {
        "subject": "api-key:Billing sync",
        "role": None,
        "kind": "INTEGRATION",
        "scopes": ["customers:read", "usage:write"],
    }
    # the secret is never listed; last use is recorded
    listed = (await owner(client, "{ apiKeys { id name prefix lastUsedAt createdBy revoked } }"))["apiKeys"]
    assert listed[0]["name"] == "Billing sync" and listed[0]["lastUsedAt"] and listed[0]["createdBy"] == "owner@test"
    assert secret not in str(listed)

    # rotation: both work during the grace period, only the new one after it
    rotated = (
        await owner(
            client,
            """mutation($id: ID!) { rotateApiKey(input: {id: $id}) {
        secret apiKey { id } userErrors { message } } }""",
            {"id": created["apiKey"]["id"]},
        )
    )["rotateApiKey"]
    new_headers = {"Authorization": f"Bearer {rotated['secret']}"}
    assert (await as_token(client, new_headers)).status_code == 200
    assert (await as_token(client, key_headers)).status_code == 200
    async with client.runtime.session_factory() as session, session.begin():
        await session.execute(
            update(ApiKey)
            .where(ApiKey.prefix == created["apiKey"]["prefix"])
            .values(rotated_grace_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    old = await as_token(client, key_headers)
    assert old.status_code == 401 and "rotated" in old.json()["errors"][0]["message"]

    # revocation
    await owner(
        client,
        "mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { revoked } } }",
        {"id": rotated["apiKey"]["id"]},
    )
    revoked = await as_token(client, new_headers)
    assert revoked.status_code == 401 and "revoked" in revoked.json()["errors"][0]["message"]
    misuse = await owner(client, "{ securityEvents(filter: {kind: [API_KEY_MISUSE]}) { totalCount } }")
    assert misuse["securityEvents"]["totalCount"] == 2

    # the whole lifecycle is in the audit trail
    actions = await owner(
        client, '{ auditEntries(filter: {targetType: "ApiKey"}) { edges { node { action actor { subject role } } } } }'
    )
    names = [e["node"]["action"] for e in actions["auditEntries"]["edges"]]
    assert sorted(set(names)) == ["createApiKey", "revokeApiKey", "rotateApiKey"]
    assert all(
        e["node"]["actor"] == {"subject": "owner@test", "role": "owner"} for e in actions["auditEntries"]["edges"]
    )


async def test_expired_and_unknown_keys(client: GraphQLClient) -> None:
    created = await owner(
        client,
        CREATE_KEY,
        {"name": "short", "scopes": ["invoices:read"], "exp": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
    )
    secret = created["createApiKey"]["secret"]
    async with client.runtime.session_factory() as session, session.begin():
        await session.execute(
            update(ApiKey).where(ApiKey.name == "short").values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    expired = await as_token(client, {"Authorization": f"Bearer {secret}"})
    assert expired.status_code == 401 and "expired" in expired.json()["errors"][0]["message"]
    forged = await as_token(client, {"Authorization": f"Bearer {secret[:-4]}AAAA"})
    assert forged.status_code == 401 and "not valid" in forged.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"name": "x", "scopes": ["admin:everything"]}, "input.scopes"),
        ({"name": "x", "scopes": []}, "input.scopes"),
        ({"name": " ", "scopes": ["usage:write"]}, "input.name"),
        ({"name": "x", "scopes": ["usage:write"], "exp": "2020-01-01T00:00:00Z"}, "input.expiresAt"),
    ],
)
async def test_create_api_key_bad_input(client: GraphQLClient, variables: dict[str, Any], field: str) -> None:
    payload = (await owner(client, CREATE_KEY, variables))["createApiKey"]
    assert payload["secret"] is None and payload["apiKey"] is None
    assert payload["userErrors"][0]["field"] == field
    assert payload["userErrors"][0]["code"] == "BAD_USER_INPUT"


async def test_forbidden_reads_are_recorded_once_per_field(client: GraphQLClient) -> None:
    await owner(client, 'mutation { createApiKey(input: {name: "n", scopes: ["usage:write"]}) { secret } }')
    body = await client.query("{ apiKeys { name } me { subject } }", role=Role.ANALYST)
    assert body["data"] == {"apiKeys": None, "me": {"subject": "analyst@test"}}
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert body["errors"][0]["extensions"]["requiredRoles"] == ["OWNER"]
    events = await client.query(
        '{ securityEvents(filter: {kind: [FORBIDDEN], subject: "analyst@test"}) { edges { node { attempted subject role requestId } } } }',
        role=Role.OPERATIONS,
    )
    edges = events["data"]["securityEvents"]["edges"]  # type: ignore[index]
    assert [e["node"]["attempted"] for e in edges] == ["Query.apiKeys"]
    assert edges[0]["node"]["role"] == "analyst" and edges[0]["node"]["requestId"]
    finance = await client.query("{ securityEvents { totalCount } }", role=Role.FINANCE)
    assert finance["data"] == {"securityEvents": None}
