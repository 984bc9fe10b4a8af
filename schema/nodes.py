"""What `node(id:)` can return: every type implementing `Node`, each readable exactly when its own
list (or the field it hangs from) is, with the same visibility rules, loaded by its local id and
converted as that list converts it. tests/test_node.py fails when a Node type is missing here."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from api.alert.service import find_visible_alert, visible_kinds
from api.audit.models import AuditEntry as AuditEntryModel
from api.auth.models import ApiKey as ApiKeyModel
from api.auth.models import SecurityEvent as SecurityEventModel
from api.auth.permissions import Capability
from api.common.queries import find_by_id
from api.dunning.service import find_case
from api.errors import Invalid, NotFound
from api.invoice.models import Payment as PaymentModel
from api.invoice.models import Refund as RefundModel
from api.reconciliation.models import Discrepancy as DiscrepancyModel
from api.reconciliation.models import ReconciliationRun as ReconciliationRunModel
from api.subscription.models import SubscriptionItem as SubscriptionItemModel
from api.usage.models import Meter as MeterModel
from api.usage.service import BucketKey, find_bucket
from api.webhook.models import WebhookEvent as WebhookEventModel
from schema.access.types import ApiKey, SecurityEvent
from schema.alert.types import Alert
from schema.audit.types import AuditEntry
from schema.catalog.types import Price, Product
from schema.context import Info
from schema.customer.types import Customer
from schema.dunning.types import DunningCase
from schema.invoice.types import Invoice, Payment, Refund
from schema.loaders import Loaders
from schema.permissions import check
from schema.reconciliation.types import Discrepancy, ReconciliationRun
from schema.scalars import Node, from_global_id
from schema.subscription.types import Subscription, SubscriptionItem
from schema.usage.types import Meter, UsageBucket
from schema.webhook.types import WebhookEvent

LocalId = uuid.UUID | int | BucketKey
T = TypeVar("T")
Load = Callable[[Info, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class LocalIdKind:
    """How a type's local id is written inside its global id."""

    description: str  # for the error: "`id` does not contain <description>"
    parse: Callable[[str], LocalId]  # raises ValueError when malformed


_BIGINT = re.compile(r"0|[1-9][0-9]{0,18}")


def _parse_bigint(text: str) -> int:
    # digits only, as to_global_id writes them: int() would also take "+7", " 7", "0_7" or a value
    # PostgreSQL's bigint cannot hold
    if not _BIGINT.fullmatch(text) or int(text) >= 2**63:
        raise ValueError(text)
    return int(text)


UUID_ID = LocalIdKind("a valid UUID", uuid.UUID)
BIGINT_ID = LocalIdKind("a valid integer id", _parse_bigint)
BUCKET_KEY = LocalIdKind("a usage bucket key (meter id/customer id/hour)", BucketKey.parse)


@dataclass(frozen=True, slots=True)
class NodeType:
    capability: Capability  # the guard of the type's list field (or of the field it is reached by)
    load: Load  # the model (or view) by local id; None when missing or hidden from the caller
    convert: Callable[[Any], Node]
    local_id: LocalIdKind = UUID_ID


def _loader(pick: Callable[[Loaders], DataLoader[uuid.UUID, Any]]) -> Load:
    return lambda info, local_id: pick(info.context.loaders).load(local_id)


async def _read(info: Info, find: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async with info.context.read_session() as session:
        return await find(session)


def _row(model: type[Any]) -> Load:
    return lambda info, local_id: _read(info, lambda session: find_by_id(session, model, local_id))


def _found_by(find: Callable[[AsyncSession, Any], Awaitable[Any]]) -> Load:
    return lambda info, local_id: _read(info, lambda session: find(session, local_id))


def _visible_alert(info: Info, local_id: uuid.UUID) -> Awaitable[Any]:
    # the alert list's kind rule: an alert the caller may not see is as missing as one that never was
    visible = visible_kinds(info.context.capabilities)
    return _read(info, lambda session: find_visible_alert(session, local_id, visible))


NODE_TYPES: dict[str, NodeType] = {
    "Customer": NodeType(Capability.CUSTOMER_READ, _loader(lambda x: x.customer), Customer.from_model),
    "Subscription": NodeType(Capability.SUBSCRIPTION_READ, _loader(lambda x: x.subscription), Subscription.from_model),
    "SubscriptionItem": NodeType(  # Subscription.items
        Capability.SUBSCRIPTION_READ, _row(SubscriptionItemModel), SubscriptionItem.from_model
    ),
    "Invoice": NodeType(Capability.INVOICE_READ, _loader(lambda x: x.invoice), Invoice.from_model),
    "Payment": NodeType(Capability.INVOICE_READ, _row(PaymentModel), Payment.from_model),  # Invoice.payments
    "Refund": NodeType(Capability.INVOICE_READ, _row(RefundModel), Refund.from_model),  # Invoice.refunds
    "DunningCase": NodeType(Capability.INVOICE_READ, _found_by(find_case), DunningCase.from_view),
    "Price": NodeType(Capability.CATALOG_READ, _loader(lambda x: x.price), Price.from_model),
    "Product": NodeType(Capability.CATALOG_READ, _loader(lambda x: x.product), Product.from_model),
    "Meter": NodeType(Capability.USAGE_READ, _row(MeterModel), Meter.from_model),
    "UsageBucket": NodeType(Capability.USAGE_READ, _found_by(find_bucket), UsageBucket.from_model, BUCKET_KEY),
    "Alert": NodeType(Capability.CUSTOMER_READ, _visible_alert, Alert.from_model),
    "WebhookEvent": NodeType(Capability.WEBHOOK_LOG_READ, _row(WebhookEventModel), WebhookEvent.from_model),
    "ReconciliationRun": NodeType(
        Capability.BILLING_OPERATIONS, _row(ReconciliationRunModel), ReconciliationRun.from_model
    ),
    "Discrepancy": NodeType(Capability.BILLING_OPERATIONS, _row(DiscrepancyModel), Discrepancy.from_model),
    "AuditEntry": NodeType(Capability.AUDIT_READ, _row(AuditEntryModel), AuditEntry.from_model, BIGINT_ID),
    "ApiKey": NodeType(Capability.ACCESS_ADMIN, _row(ApiKeyModel), ApiKey.from_model),
    "SecurityEvent": NodeType(
        Capability.SECURITY_EVENT_READ, _row(SecurityEventModel), SecurityEvent.from_model, BIGINT_ID
    ),
}


async def resolve_node(info: Info, global_id: str) -> Node:
    """The object a global id names. The caller's right to read its type is checked before the
    local id is even parsed; a missing object and one the caller may not see give the same error."""
    type_name, local_text = from_global_id(global_id)
    node_type = NODE_TYPES.get(type_name)
    if node_type is None:
        raise Invalid(f"`id` names an unknown type {type_name!r}", field="id")
    check(info, node_type.capability, f"node({type_name})")
    try:
        local_id = node_type.local_id.parse(local_text)
    except ValueError:
        raise Invalid(f"`id` does not contain {node_type.local_id.description}", field="id") from None
    model = await node_type.load(info, local_id)
    if model is None:
        raise NotFound(f"{type_name} {local_id} does not exist", field="id")
    return node_type.convert(model)
