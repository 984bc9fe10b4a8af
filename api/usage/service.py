"""Usage: meters, quotas, recording events, and reading usage back as series and summaries."""

from __future__ import annotations

import enum
import re
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.record import Actor, record_audit
from api.catalog.commands import ensure_stripe_price
from api.catalog.models import Price, PriceInterval, Product, UsageType
from api.common.daterange import DateRange, make_range
from api.common.money import MoneyAmount
from api.common.pagination import Page, PageArgs, SortKey
from api.common.queries import count_where, fetch_page
from api.db import driver_connection, utcnow
from api.errors import Invalid, NotFound
from api.idempotency.service import MutationKey, previous_result, remember
from api.stripe.gateway import StripeGateway
from api.usage.ingest import IngestResult, directory_for, ingest_events
from api.usage.models import Meter, MeterAggregation, QuotaKind, ReportStatus, UsageBucket, UsageQuota
from api.usage.periods import COMBINE, decimal_text, floor_hour, hourly_rows, usage_in_windows
from api.usage.quotas import CustomerQuota, quotas_in_force
from api.usage.reporting import STRIPE_FORMULA

GRAPHQL_BATCH_LIMIT = 1000  # recordUsage; POST /v1/usage-events takes USAGE_MAX_BATCH
_METER_KEY = re.compile(r"^[a-z][a-z0-9_.-]{0,99}$")
_PROPERTY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")
MAX_POINTS = 2000
MAX_TOP = 100
DEFAULT_SPAN = timedelta(days=30)


class Granularity(enum.StrEnum):
    HOUR = "HOUR"
    DAY = "DAY"
    MONTH = "MONTH"


# --- meters -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewMeter:
    key: str
    name: str
    aggregation: MeterAggregation
    value_property: str | None = None
    unique_property: str | None = None
    unit: str | None = None


async def list_meters(session: AsyncSession) -> list[Meter]:
    return list((await session.execute(select(Meter).order_by(Meter.key))).scalars())


async def meter_by_key(session: AsyncSession, key: str, field: str = "meter") -> Meter:
    meter = (await session.execute(select(Meter).where(Meter.key == key))).scalar_one_or_none()
    if meter is None:
        raise NotFound(f"no meter with key {key!r}", field=field)
    return meter


def _check_meter(data: NewMeter) -> None:
    if not _METER_KEY.match(data.key):
        raise Invalid(
            "`key` must start with a lower-case letter and use a-z, 0-9, `_`, `.`, `-` (at most 100)", field="key"
        )
    if not data.name.strip() or len(data.name) > 200:
        raise Invalid("`name` must be 1 to 200 characters", field="name")
    for name, value in (("valueProperty", data.value_property), ("uniqueProperty", data.unique_property)):
        if value is not None and not _PROPERTY.match(value):
            raise Invalid(f"`{name}` must be a property name (letters, digits, `_`, `.`, `-`)", field=name)
    if data.aggregation is MeterAggregation.UNIQUE_COUNT and not data.unique_property:
        raise Invalid(
            "a UNIQUE_COUNT meter needs `uniqueProperty`: the property whose values it counts", field="uniqueProperty"
        )
    if data.aggregation is not MeterAggregation.UNIQUE_COUNT and data.unique_property:
        raise Invalid("`uniqueProperty` applies to UNIQUE_COUNT meters only", field="uniqueProperty")
    if data.aggregation in (MeterAggregation.COUNT, MeterAggregation.UNIQUE_COUNT) and data.value_property:
        raise Invalid(f"a {data.aggregation.value} meter takes no value: drop `valueProperty`", field="valueProperty")


async def create_meter(
    session: AsyncSession, actor: Actor, gateway: StripeGateway, data: NewMeter, idempotency_key: str | None = None
) -> Meter:
    """The meter and its Stripe billing meter (`event_name` = the key). Creating the same key again
    is refused, unless it is a repeat with the same `idempotency_key` (the first meter comes back);
    a retry after a failure reuses Stripe's first answer (idempotency key per meter key)."""
    mk = MutationKey.of(actor, "createMeter", idempotency_key, asdict(data))
    if (previous := await previous_result(session, mk)) is not None:
        return await _created(session, Meter, previous["meterId"])
    _check_meter(data)
    if (await session.execute(select(Meter.id).where(Meter.key == data.key))).scalar_one_or_none() is not None:
        raise Invalid(f"a meter with key {data.key!r} already exists", field="key")
    remote = await gateway.create_billing_meter(
        {
            "display_name": data.name.strip(),
            "event_name": data.key,
            "default_aggregation": {"formula": STRIPE_FORMULA[data.aggregation]},
            "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
            "value_settings": {"event_payload_key": "value"},
        },
        idempotency_key=f"ledgerline-meter-{data.key}",
    )
    meter = Meter(
        key=data.key,
        name=data.name.strip(),
        unit=data.unit,
        aggregation=data.aggregation,
        value_property=data.value_property,
        unique_property=data.unique_property,
        stripe_event_name=data.key,
        stripe_meter_id=remote.id,
    )
    session.add(meter)
    await session.flush()
    await record_audit(session, actor, "meter.create", "Meter", str(meter.id), after=_meter_facts(meter))
    await remember(session, mk, {"meterId": str(meter.id)})
    return meter


_Created = TypeVar("_Created", Meter, Price)


async def _created(session: AsyncSession, model: type[_Created], stored_id: str) -> _Created:
    """What the first call with an idempotency key created."""
    created = await session.get(model, uuid.UUID(stored_id))
    if created is None:  # never deleted; kept as a clear error rather than a None
        raise NotFound(f"{model.__name__} {stored_id} made by the first call no longer exists")
    return created


def _meter_facts(meter: Meter) -> dict[str, Any]:
    return {
        "key": meter.key,
        "name": meter.name,
        "aggregation": meter.aggregation.value,
        "valueProperty": meter.value_property,
        "uniqueProperty": meter.unique_property,
        "stripeMeterId": meter.stripe_meter_id,
    }


# --- quotas -----------------------------------------------------------------------------------------


async def set_usage_quota(
    session: AsyncSession, actor: Actor, price_id: uuid.UUID, meter_key: str, limit: Decimal | None, kind: QuotaKind
) -> UsageQuota | None:
    """Sets (or with `limit` None removes) how much of a meter the price's plan includes per period."""
    price = await session.get(Price, price_id)
    if price is None:
        raise NotFound(f"price {price_id} does not exist", field="price")
    meter = await meter_by_key(session, meter_key)
    if limit is not None and (not limit.is_finite() or limit < 0 or limit >= Decimal("1e14")):
        raise Invalid("`limit` must be a number ≥ 0", field="limit")
    quota = (
        await session.execute(
            select(UsageQuota).where(UsageQuota.price_id == price.id, UsageQuota.meter_id == meter.id).with_for_update()
        )
    ).scalar_one_or_none()
    before = _quota_facts(quota, meter) if quota else None
    if limit is None:
        if quota is not None:
            await session.delete(quota)
            await session.flush()
        await record_audit(session, actor, "usage_quota.remove", "Price", str(price.id), before=before)
        return None
    if quota is None:
        quota = UsageQuota(price_id=price.id, meter_id=meter.id, quota_limit=limit, kind=kind)
        session.add(quota)
    else:
        quota.quota_limit, quota.kind = limit, kind
    await session.flush()
    await record_audit(
        session, actor, "usage_quota.set", "Price", str(price.id), before=before, after=_quota_facts(quota, meter)
    )
    return quota


def _quota_facts(quota: UsageQuota, meter: Meter) -> dict[str, Any]:
    return {"meter": meter.key, "limit": decimal_text(quota.quota_limit), "kind": quota.kind.value}


async def quotas_of_prices(session: AsyncSession, price_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[UsageQuota]]:
    rows = (await session.execute(select(UsageQuota).where(UsageQuota.price_id.in_(set(price_ids))))).scalars()
    by_price: dict[uuid.UUID, list[UsageQuota]] = defaultdict(list)
    for quota in rows:
        by_price[quota.price_id].append(quota)
    return by_price


# --- recording --------------------------------------------------------------------------------------


async def record_usage(session: AsyncSession, raw_events: Sequence[Any], now: datetime | None = None) -> IngestResult:
    """Ingests a batch in the session's transaction (both doors call this)."""
    directory = directory_for(session.get_bind())
    return await ingest_events(await driver_connection(session), raw_events, now or utcnow(), directory)


# --- reading ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UsagePoint:
    start: datetime
    value: Decimal
    event_count: int


@dataclass(frozen=True, slots=True)
class UsageSeries:
    meter: Meter
    total: Decimal
    event_count: int
    points: list[UsagePoint]


def usage_span(
    start: datetime | None, end: datetime | None, granularity: Granularity, now: datetime
) -> tuple[datetime, datetime]:
    """[start, end) in whole hours; 30 days up to now unless given; at most MAX_POINTS points."""
    end = end or floor_hour(now) + timedelta(hours=1)
    start = floor_hour(start or end - DEFAULT_SPAN)
    if granularity is Granularity.HOUR and (end - start) > timedelta(hours=MAX_POINTS):
        raise Invalid(f"HOUR granularity covers at most {MAX_POINTS} hours: narrow `from`/`to`", field="granularity")
    return start, end


_CUSTOMERS_SCOPE = (
    "(SELECT 0 AS key, c, $2::uuid AS m, $3::timestamptz AS lo, $4::timestamptz AS hi "
    "FROM unnest($1::uuid[]) AS c) AS q"
)
_ALL_SCOPE = "(SELECT 0 AS key, NULL::uuid AS c, $1::uuid AS m, $2::timestamptz AS lo, $3::timestamptz AS hi) AS q"


Keys = Sequence[tuple[str, str]]  # (alias, SQL expression over the hourly rows `r`)


async def _grouped(
    conn: asyncpg.Connection, meter: Meter, scope: str, args: Sequence[Any], keys: Keys, *, per_customer: bool
) -> list[dict[str, Any]]:
    """`value` (the meter's aggregation) and `events` per group of `keys`, from the buckets and the
    fresh events together, ordered by the keys."""
    unique = meter.aggregation is MeterAggregation.UNIQUE_COUNT
    select_keys = ", ".join(f"{expression} AS {alias}" for alias, expression in keys)
    group_by = ", ".join(str(position) for position in range(1, len(keys) + 1))
    value = "NULL::numeric" if unique else COMBINE[meter.aggregation]
    rows = await conn.fetch(
        f"SELECT {select_keys}, {value} AS value, sum(r.event_count) AS events "
        f"FROM ({hourly_rows(scope, unique=False, per_customer=per_customer)}) AS r "
        f"GROUP BY {group_by} ORDER BY {group_by}",
        *args,
    )
    result = [dict(row) for row in rows]
    if unique:
        distinct_rows = await conn.fetch(
            f"SELECT {select_keys}, {COMBINE[meter.aggregation]} AS value "
            f"FROM ({hourly_rows(scope, unique=True, per_customer=per_customer)}) AS r GROUP BY {group_by}",
            *args,
        )
        distinct = {tuple(row[alias] for alias, _ in keys): row["value"] for row in distinct_rows}
        for row in result:
            row["value"] = distinct.get(tuple(row[alias] for alias, _ in keys), 0)
    return result


_BY_CUSTOMER: Keys = [("customer_id", "r.customer_id")]


async def usage_series(
    conn: asyncpg.Connection,
    customer_ids: Sequence[uuid.UUID],
    meters: Sequence[Meter],
    start: datetime,
    end: datetime,
    granularity: Granularity,
) -> dict[uuid.UUID, list[UsageSeries]]:
    """Each customer's usage of each meter in [start, end): a point per period and the total, in
    two statements per meter (three for UNIQUE_COUNT)."""
    series: dict[uuid.UUID, list[UsageSeries]] = {c: [] for c in customer_ids}
    ids = list(set(customer_ids))
    trunc = granularity.value.lower()
    for meter in meters:
        args = [ids, meter.id, start, end]
        by_period: Keys = [*_BY_CUSTOMER, ("period", f"date_trunc('{trunc}', r.hour, 'UTC')")]
        points = await _grouped(conn, meter, _CUSTOMERS_SCOPE, args, by_period, per_customer=True)
        totals = await _grouped(conn, meter, _CUSTOMERS_SCOPE, args, _BY_CUSTOMER, per_customer=True)
        by_customer: dict[uuid.UUID, list[UsagePoint]] = defaultdict(list)
        for p in points:
            by_customer[p["customer_id"]].append(UsagePoint(p["period"], Decimal(p["value"] or 0), int(p["events"])))
        total_of = {t["customer_id"]: (Decimal(t["value"] or 0), int(t["events"])) for t in totals}
        for customer_id in ids:
            total, count = total_of.get(customer_id, (Decimal(0), 0))
            series[customer_id].append(UsageSeries(meter, total, count, by_customer.get(customer_id, [])))
    return series


@dataclass(frozen=True, slots=True)
class CustomerUsage:
    customer_id: uuid.UUID
    value: Decimal
    event_count: int


@dataclass(frozen=True, slots=True)
class UsageSummary:
    meter: Meter
    start: datetime
    end: datetime
    total: Decimal
    event_count: int
    customer_count: int
    top_customers: list[CustomerUsage]


async def usage_summary(
    conn: asyncpg.Connection, meter: Meter, start: datetime, end: datetime, top: int
) -> UsageSummary:
    """The meter over every customer in [start, end): the total (the meter's aggregation over all
    events), how many customers used it, and the `top` customers by their own aggregate."""
    args = [meter.id, start, end]
    per_customer = await _grouped(conn, meter, _ALL_SCOPE, args, _BY_CUSTOMER, per_customer=False)
    overall = await _grouped(conn, meter, _ALL_SCOPE, args, [("everyone", "0")], per_customer=False)
    ranked = sorted(per_customer, key=lambda r: (-Decimal(r["value"] or 0), str(r["customer_id"])))
    total, events = (Decimal(overall[0]["value"] or 0), int(overall[0]["events"])) if overall else (Decimal(0), 0)
    return UsageSummary(
        meter=meter,
        start=start,
        end=end,
        total=total,
        event_count=events,
        customer_count=len(per_customer),
        top_customers=[
            CustomerUsage(r["customer_id"], Decimal(r["value"] or 0), int(r["events"])) for r in ranked[:top]
        ],
    )


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    quota: CustomerQuota
    used: Decimal

    @property
    def percent(self) -> float:
        return float(self.used * 100 / self.quota.limit) if self.quota.limit > 0 else (100.0 if self.used else 0.0)


async def quota_status(
    conn: asyncpg.Connection, customer_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[QuotaStatus]]:
    """Each customer's current-period usage against every quota of its plan."""
    quotas = await quotas_in_force(conn, customer_ids)
    windows = [q.window() for q in quotas]
    status: dict[uuid.UUID, list[QuotaStatus]] = {c: [] for c in customer_ids}
    for quota, used in zip(quotas, await usage_in_windows(conn, windows), strict=True):
        status[quota.customer_id].append(QuotaStatus(quota, used))
    for items in status.values():
        items.sort(key=lambda s: s.quota.meter_key)
    return status


# --- buckets and their reporting ----------------------------------------------------------------------

BUCKET_SORT_KEY = SortKey("usage_bucket:START_DESC", UsageBucket.bucket_start, UsageBucket.id, True)


@dataclass(frozen=True, slots=True)
class BucketFilter:
    customer_id: uuid.UUID | None = None
    meter_key: str | None = None
    statuses: tuple[ReportStatus, ...] = ()
    period: DateRange = field(default_factory=DateRange)


def _bucket_conditions(flt: BucketFilter) -> list[ColumnElement[bool]]:
    conditions = [flt.period.clause(UsageBucket.bucket_start)]
    if flt.customer_id is not None:
        conditions.append(UsageBucket.customer_id == flt.customer_id)
    if flt.meter_key is not None:
        conditions.append(UsageBucket.meter_id == select(Meter.id).where(Meter.key == flt.meter_key).scalar_subquery())
    if flt.statuses:
        conditions.append(UsageBucket.report_status.in_(flt.statuses))
    return conditions


async def list_buckets(session: AsyncSession, flt: BucketFilter, page: PageArgs) -> Page[UsageBucket]:
    return await fetch_page(session, select(UsageBucket).where(*_bucket_conditions(flt)), BUCKET_SORT_KEY, page)


_HOUR_SECONDS = re.compile(r"0|[1-9][0-9]{0,11}")


@dataclass(frozen=True, slots=True)
class BucketKey:
    """A bucket's identity, as the schema's ids carry it: `<meter id>/<customer id>/<the hour's
    start in Unix seconds>` (its primary key, so a refetch is one index lookup)."""

    meter_id: uuid.UUID
    customer_id: uuid.UUID
    start: datetime

    def __str__(self) -> str:
        return f"{self.meter_id}/{self.customer_id}/{int(self.start.timestamp())}"

    @classmethod
    def of(cls, bucket: UsageBucket) -> BucketKey:
        return cls(bucket.meter_id, bucket.customer_id, bucket.bucket_start)

    @classmethod
    def parse(cls, text: str) -> BucketKey:
        """ValueError unless `text` is what __str__ writes (the hour a whole UTC hour)."""
        meter, customer, seconds = text.split("/")
        if not _HOUR_SECONDS.fullmatch(seconds) or int(seconds) % 3600:
            raise ValueError(text)
        return cls(uuid.UUID(meter), uuid.UUID(customer), datetime.fromtimestamp(int(seconds), UTC))


async def find_bucket(session: AsyncSession, key: BucketKey) -> UsageBucket | None:
    """One bucket by the key the schema's id carries."""
    return await session.get(UsageBucket, (key.meter_id, key.customer_id, key.start))


async def count_buckets(session: AsyncSession, flt: BucketFilter) -> int:
    return await count_where(session, UsageBucket, _bucket_conditions(flt))


# --- the read side as the schema calls it (one session each) --------------------------------------------


async def summarize_usage(
    session: AsyncSession, meter_key: str, start: datetime | None, end: datetime | None, top: int, now: datetime
) -> UsageSummary:
    if not 0 <= top <= MAX_TOP:
        raise Invalid(f"`top` must be between 0 and {MAX_TOP}", field="top")
    make_range(start, end, field="from")  # `from` after `to` → an error naming it
    lo, hi = usage_span(start, end, Granularity.DAY, now)
    meter = await meter_by_key(session, meter_key)
    return await usage_summary(await driver_connection(session, transactional=False), meter, lo, hi, top)


async def series_for_customers(
    session: AsyncSession,
    customer_ids: Sequence[uuid.UUID],
    meter_key: str | None,
    span: tuple[datetime, datetime],
    granularity: Granularity,
) -> dict[uuid.UUID, list[UsageSeries]]:
    meters = [await meter_by_key(session, meter_key)] if meter_key is not None else await list_meters(session)
    conn = await driver_connection(session, transactional=False)
    return await usage_series(conn, customer_ids, meters, span[0], span[1], granularity)


async def quota_status_for_customers(
    session: AsyncSession, customer_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[QuotaStatus]]:
    return await quota_status(await driver_connection(session, transactional=False), customer_ids)


# --- metered prices ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewMeteredPrice:
    meter_key: str
    unit_amount: MoneyAmount  # per unit of the meter's aggregate
    interval: PriceInterval = PriceInterval.MONTH
    product_name: str | None = None
    nickname: str | None = None

    def payload(self) -> dict[str, Any]:
        return {**asdict(self), "unit_amount": self.unit_amount.to_json()}


async def create_metered_price(
    session: AsyncSession,
    actor: Actor,
    gateway: StripeGateway,
    data: NewMeteredPrice,
    idempotency_key: str | None = None,
) -> Price:
    """A price billed per unit of a meter, in Ledgerline and in Stripe (a metered recurring price
    on the meter's Stripe billing meter): subscribing to it bills what usage reporting sends.
    A repeat with the same `idempotency_key` returns the first price; a retry after a failure
    makes the same Stripe product and price (their local ids, hence Stripe keys, are stable)."""
    mk = MutationKey.of(actor, "createMeteredPrice", idempotency_key, data.payload())
    if (previous := await previous_result(session, mk)) is not None:
        return await _created(session, Price, previous["priceId"])
    meter = await meter_by_key(session, data.meter_key)
    if meter.stripe_meter_id is None:
        raise Invalid(
            f"meter {meter.key!r} has no Stripe billing meter (it was not made by createMeter)", field="meter"
        )
    unit_amount = data.unit_amount.minor_units("unitAmount")
    if unit_amount < 0:
        raise Invalid("`unitAmount` must not be negative", field="unitAmount.amount")
    product = Product(id=mk.local_id("product"), name=(data.product_name or meter.name).strip()[:200])
    session.add(product)
    await session.flush()
    price = Price(
        id=mk.local_id("price"),
        product_id=product.id,
        nickname=data.nickname,
        unit_amount=unit_amount,
        currency=data.unit_amount.currency.strip().lower(),
        interval=data.interval,
        usage_type=UsageType.METERED,
        meter_id=meter.id,
    )
    session.add(price)
    await session.flush()
    await ensure_stripe_price(session, gateway, price, field="meter")
    await record_audit(
        session,
        actor,
        "price.create_metered",
        "Price",
        str(price.id),
        after={
            "meter": meter.key,
            "unitAmount": unit_amount,
            "currency": price.currency,
            "stripePriceId": price.stripe_price_id,
        },
    )
    await remember(session, mk, {"priceId": str(price.id)})
    return price
