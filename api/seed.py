"""Demo data behind `ledgerline seed`: a realistic, deterministic back office.

`build_demo_data` is a pure function: the same `customers`, `seed` and `now` give the same
rows, ids included (every id and every choice comes from one `random.Random(seed)`).
`seed_demo_data` writes those rows with asyncpg's binary COPY, all in one transaction, so
a failure half-way leaves nothing behind. Rows are plain tuples (no ORM objects): 10,000
customers are several hundred thousand rows and must take seconds, not minutes.

Emails use `*.example.com` and phone numbers sit in fictional ranges where countries have
them, so nothing seeded reaches a real person if a dunning email or SMS ever goes out.
"""

from __future__ import annotations

import asyncio
import bisect
import calendar
import hashlib
import json
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from operator import itemgetter
from typing import Any, TypeVar

import asyncpg

from api.audit.chain import GENESIS_HASH, HASHED_FIELDS, entry_hash
from api.catalog.models import PriceInterval, UsageType
from api.customer.models import CustomerStatus, CustomerTier
from api.db import sync_url
from api.invoice.models import InvoiceStatus, PaymentStatus, RefundStatus
from api.revenue.history import PricedItem, normalise
from api.revenue.models import MrrSource
from api.subscription.models import PauseBehavior, SubscriptionStatus
from api.usage.models import MeterAggregation

SeedProgress = Callable[[str, int, int], None]  # (stage label, done, total)

Row = tuple[Any, ...]
T = TypeVar("T")

COPY_CHUNK_ROWS = 5_000
STAGE_GENERATE = "Generating demo data"
STAGE_AUDIT_CHAIN = "Chaining audit trail"
# progress stage per table (the catalog's few rows share one stage); labels fit 24 columns
STAGE_LABELS = {
    "meter": "Writing catalog",
    "product": "Writing catalog",
    "price": "Writing catalog",
    "api_key": "Writing catalog",
    "customer": "Writing customers",
    "subscription": "Writing subscriptions",
    "subscription_item": "Writing sub. items",
    "subscription_mrr_change": "Writing MRR history",
    "invoice": "Writing invoices",
    "invoice_line": "Writing invoice lines",
    "payment": "Writing payments",
    "refund": "Writing refunds",
    "usage_event": "Writing usage events",
    "audit_entry": "Writing audit entries",
}
PROGRESS_EVERY_CUSTOMERS = 500
# one seed at a time per database (pg_advisory_xact_lock key: "LLSEED" in ASCII)
SEED_LOCK_KEY = 0x4C4C5345_4544

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
TRIAL_DAYS = 14
# Smart-retry style schedule after the first failed attempt (offsets from finalization)
DUNNING_OFFSETS = (timedelta(0), timedelta(days=3), timedelta(days=7), timedelta(days=14))

ACTIVE = CustomerStatus.ACTIVE.value
TRIAL = CustomerStatus.TRIAL.value
PAST_DUE = CustomerStatus.PAST_DUE.value
SUSPENDED = CustomerStatus.SUSPENDED.value
CANCELED = CustomerStatus.CANCELED.value
KICKSTART = CustomerTier.KICKSTART.value
PRO = CustomerTier.PRO.value
CUSTOM = CustomerTier.CUSTOM.value
MONTH = PriceInterval.MONTH.value
YEAR = PriceInterval.YEAR.value
INV_DRAFT = InvoiceStatus.DRAFT.value
INV_OPEN = InvoiceStatus.OPEN.value
INV_PAID = InvoiceStatus.PAID.value
INV_VOID = InvoiceStatus.VOID.value
INV_UNCOLLECTIBLE = InvoiceStatus.UNCOLLECTIBLE.value
PAY_OK = PaymentStatus.SUCCEEDED.value
TRIALING_SUB = SubscriptionStatus.TRIALING.value
ACTIVE_SUB = SubscriptionStatus.ACTIVE.value
PAST_DUE_SUB = SubscriptionStatus.PAST_DUE.value
UNPAID_SUB = SubscriptionStatus.UNPAID.value
CANCELED_SUB = SubscriptionStatus.CANCELED.value
PAY_FAILED = PaymentStatus.FAILED.value

TIER_WEIGHTS = ((KICKSTART, 0.50), (PRO, 0.35), (CUSTOM, 0.15))
STATUS_WEIGHTS = ((ACTIVE, 0.72), (TRIAL, 0.07), (PAST_DUE, 0.06), (SUSPENDED, 0.04), (CANCELED, 0.11))

INDUSTRIES = (
    "Software",
    "Fintech",
    "Healthcare",
    "E-commerce",
    "Education",
    "Media",
    "Logistics",
    "Manufacturing",
    "Marketing",
    "Travel",
    "Nonprofit",
    "Real estate",
)
NAME_FIRST = (
    "Acme",
    "Aurora",
    "Atlas",
    "Beacon",
    "Blue",
    "Bramble",
    "Bright",
    "Cascade",
    "Cedar",
    "Clover",
    "Cobalt",
    "Copper",
    "Crimson",
    "Delta",
    "Drift",
    "Echo",
    "Ember",
    "Evergreen",
    "Falcon",
    "Fjord",
    "Foxglove",
    "Garnet",
    "Granite",
    "Harbor",
    "Hazel",
    "Helix",
    "Indigo",
    "Iron",
    "Ivy",
    "Juniper",
    "Kestrel",
    "Lattice",
    "Lumen",
    "Maple",
    "Meridian",
    "Nimbus",
    "North",
    "Nova",
    "Oak",
    "Onyx",
    "Orbit",
    "Pine",
    "Pioneer",
    "Polar",
    "Prism",
    "Quartz",
    "Quill",
    "Radiant",
    "Redwood",
    "Sable",
    "Silver",
    "Sky",
    "Solstice",
    "Spruce",
    "Summit",
    "Swift",
    "Tidal",
    "Vertex",
    "Willow",
    "Zenith",
)
NAME_SECOND = (
    "Analytics",
    "Apparel",
    "Bio",
    "Capital",
    "Cloud",
    "Commerce",
    "Data",
    "Design",
    "Devices",
    "Digital",
    "Dynamics",
    "Energy",
    "Foods",
    "Freight",
    "Health",
    "Insights",
    "Interactive",
    "Kitchen",
    "Labs",
    "Learning",
    "Logic",
    "Logistics",
    "Media",
    "Metrics",
    "Mobility",
    "Networks",
    "Outdoors",
    "Partners",
    "Payments",
    "Robotics",
    "Security",
    "Software",
    "Solutions",
    "Studios",
    "Supply",
    "Systems",
    "Technologies",
    "Travel",
    "Ventures",
    "Works",
)
INTERNAL_NAMES = (
    "Ledgerline QA",
    "Ledgerline Sales Demo",
    "Ledgerline Support Sandbox",
    "Ledgerline Staff Account",
)
EMAIL_LOCALS = ("billing", "finance", "accounts", "ap", "admin", "ops")
PERSON_FIRST = (
    "anna",
    "ben",
    "chloe",
    "david",
    "emma",
    "felix",
    "hana",
    "ivan",
    "julia",
    "karim",
    "lena",
    "marco",
    "nina",
    "omar",
    "paula",
    "rahul",
    "sofia",
    "tom",
    "yara",
    "zoe",
)
PERSON_LAST = (
    "schmidt",
    "martin",
    "garcia",
    "smith",
    "nguyen",
    "rossi",
    "jansen",
    "kowalski",
    "dubois",
    "murphy",
    "larsen",
    "tanaka",
    "silva",
    "brown",
    "novak",
    "weber",
)
NOTES = (
    "Prefers invoices by email to accounts payable.",
    "Annual business review in Q3.",
    "Key account: check with finance before any billing change.",
    "Asked about SSO; follow up with solutions engineering.",
    "Procurement requires a PO number on every invoice.",
    "Migrated from the 2024 price list.",
)
INTERNAL_NOTE = "Internal account: used by Ledgerline staff, excluded from revenue metrics."


@dataclass(frozen=True)
class _Country:
    code: str
    weight: float
    eur: bool  # bills in EUR (most of the time)
    legal_forms: tuple[str, ...]
    cities: tuple[tuple[str, str | None, str], ...]  # (city, state, postal pattern)
    streets: tuple[str, ...]
    number_first: bool  # "12 Main Street" versus "Hauptstraße 12"
    phone: str  # '#' is a random digit
    tax_id: str
    tax_share: float


COUNTRIES = (
    _Country(
        "US",
        0.38,
        False,
        ("Inc.", "LLC", "Corp."),
        (
            ("San Francisco", "CA", "941##"),
            ("New York", "NY", "100##"),
            ("Austin", "TX", "787##"),
            ("Seattle", "WA", "981##"),
            ("Boston", "MA", "021##"),
            ("Chicago", "IL", "606##"),
            ("Denver", "CO", "802##"),
        ),
        ("Market Street", "Broadway", "Main Street", "Congress Avenue", "Pike Street", "Mission Street", "Elm Street"),
        True,
        "+1 2## 555 01##",
        "##-#######",
        0.25,
    ),
    _Country(
        "GB",
        0.12,
        False,
        ("Ltd", "Ltd", "PLC"),
        (
            ("London", None, "EC#A #@@"),
            ("Manchester", None, "M# #@@"),
            ("Edinburgh", None, "EH# #@@"),
            ("Bristol", None, "BS# #@@"),
        ),
        ("High Street", "King's Road", "Victoria Street", "Station Road", "Deansgate"),
        True,
        "+44 20 7946 0###",
        "GB#########",
        0.6,
    ),
    _Country(
        "DE",
        0.12,
        True,
        ("GmbH", "AG", "GmbH & Co. KG"),
        (("Berlin", None, "10###"), ("Munich", None, "80###"), ("Hamburg", None, "20###"), ("Cologne", None, "50###")),
        ("Hauptstraße", "Friedrichstraße", "Torstraße", "Schillerstraße", "Bahnhofstraße"),
        False,
        "+49 30 #### ####",
        "DE#########",
        0.85,
    ),
    _Country(
        "FR",
        0.09,
        True,
        ("SAS", "SARL", "SA"),
        (("Paris", None, "750##"), ("Lyon", None, "6900#"), ("Bordeaux", None, "3300#"), ("Nantes", None, "4400#")),
        ("rue de Rivoli", "avenue Jean Jaurès", "boulevard Voltaire", "rue de la République"),
        True,
        "+33 1 ## ## ## ##",
        "FR###########",
        0.85,
    ),
    _Country(
        "NL",
        0.07,
        True,
        ("B.V.",),
        (("Amsterdam", None, "10## @@"), ("Rotterdam", None, "30## @@"), ("Utrecht", None, "35## @@")),
        ("Herengracht", "Keizersgracht", "Damrak", "Coolsingel"),
        False,
        "+31 20 ### ####",
        "NL#########B01",
        0.85,
    ),
    _Country(
        "CA",
        0.07,
        False,
        ("Inc.", "Ltd."),
        (("Toronto", "ON", "M#@ #@#"), ("Vancouver", "BC", "V#@ #@#"), ("Montreal", "QC", "H#@ #@#")),
        ("King Street West", "Granville Street", "Rue Sainte-Catherine", "Bay Street"),
        True,
        "+1 416 555 01##",
        "#########RT0001",
        0.3,
    ),
    _Country(
        "AU",
        0.05,
        False,
        ("Pty Ltd",),
        (("Sydney", "NSW", "20##"), ("Melbourne", "VIC", "30##"), ("Brisbane", "QLD", "40##")),
        ("George Street", "Collins Street", "Queen Street"),
        True,
        "+61 2 5550 ####",
        "## ### ### ###",
        0.5,
    ),
    _Country(
        "ES",
        0.04,
        True,
        ("S.L.", "S.A."),
        (("Madrid", None, "280##"), ("Barcelona", None, "080##"), ("Valencia", None, "460##")),
        ("Calle de Alcalá", "Passeig de Gràcia", "Gran Vía"),
        False,
        "+34 91 ### ## ##",
        "ESB########",
        0.8,
    ),
    _Country(
        "IE",
        0.03,
        True,
        ("Ltd", "DAC"),
        (("Dublin", None, "D0# @###"), ("Cork", None, "T12 @###")),
        ("Grafton Street", "Baggot Street", "Patrick Street"),
        True,
        "+353 1 ### ####",
        "IE#######@",
        0.8,
    ),
    _Country(
        "SE",
        0.03,
        False,
        ("AB",),
        (("Stockholm", None, "11# ##"), ("Gothenburg", None, "41# ##")),
        ("Drottninggatan", "Kungsgatan", "Sveavägen"),
        False,
        "+46 8 ### ### ##",
        "SE############",
        0.8,
    ),
)

STAFF_BY_ROLE: dict[str, tuple[str, ...]] = {
    "owner": ("alice@ledgerline.test",),
    "operations": ("bob@ledgerline.test", "grace@ledgerline.test"),
    "finance": ("carol@ledgerline.test", "frank@ledgerline.test"),
    "support": ("dave@ledgerline.test", "erin@ledgerline.test"),
}
STAFF_USER_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
)
API_EMAIL_DOMAIN = "example.com"
# Stripe's card brand names, with a plausible share each (cumulative, for bisect)
CARD_BRANDS = ("visa", "mastercard", "amex", "discover")
CARD_BRAND_CUMULATIVE = (0.55, 0.87, 0.97)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


@dataclass
class SeedSummary:
    customers: int
    subscriptions: int
    invoices: int
    payments: int
    refunds: int
    usage_events: int
    audit_entries: int
    seconds: float


@dataclass(frozen=True)
class TableRows:
    """Rows for one table, in the column order of `columns`."""

    table: str
    columns: tuple[str, ...]
    rows: list[Row]


@dataclass(frozen=True)
class DemoData:
    """Every row of a demo data set, tables in insertion (foreign key) order."""

    tables: tuple[TableRows, ...]

    def table(self, name: str) -> TableRows:
        for table in self.tables:
            if table.table == name:
                return table
        raise KeyError(name)

    def count(self, name: str) -> int:
        return len(self.table(name).rows)

    def fingerprint(self) -> str:
        """A SHA-256 over every row of every table: equal fingerprints mean identical data."""
        digest = hashlib.sha256()
        for table in self.tables:
            digest.update(f"{table.table}:{','.join(table.columns)}\n".encode())
            for row in table.rows:
                digest.update(repr(row).encode())
                digest.update(b"\n")
        return digest.hexdigest()


def default_now() -> datetime:
    """Today at 00:00 UTC: demo data generated on the same day is identical."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


async def database_is_empty(database_url: str) -> bool:
    """True when the database has no customers yet (a seed may run)."""
    conn = await asyncpg.connect(sync_url(database_url))
    try:
        return not bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM customer)"))
    finally:
        await conn.close()


async def seed_demo_data(
    database_url: str,
    *,
    customers: int = 200,
    seed: int = 42,
    now: datetime | None = None,
    progress: SeedProgress | None = None,
) -> SeedSummary:
    """Generate demo data and write it in one transaction; raises ValueError (and writes
    nothing) when the database already has customers.

    The rows are generated in a worker thread, so the event loop stays responsive; `progress`
    is called from that thread while generating, then from the loop's thread while writing.
    """
    started = time.perf_counter()
    if customers < 1:
        raise ValueError("customers must be at least 1")
    report: SeedProgress = progress or _no_progress
    dsn = sync_url(database_url)
    conn = await asyncpg.connect(dsn)
    try:
        await _refuse_unless_empty(conn)  # early: do not spend seconds generating for nothing
    finally:
        await conn.close()
    data = await asyncio.to_thread(build_demo_data, customers=customers, seed=seed, now=now, progress=report)
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            # checked again under a lock: two seeds started together must not both write
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SEED_LOCK_KEY)
            await _refuse_unless_empty(conn)
            await _copy_tables(conn, data, report)
    finally:
        await conn.close()
    return SeedSummary(
        customers=data.count("customer"),
        subscriptions=data.count("subscription"),
        invoices=data.count("invoice"),
        payments=data.count("payment"),
        refunds=data.count("refund"),
        usage_events=data.count("usage_event"),
        audit_entries=data.count("audit_entry"),
        seconds=round(time.perf_counter() - started, 3),
    )


def build_demo_data(
    *,
    customers: int = 200,
    seed: int = 42,
    now: datetime | None = None,
    progress: SeedProgress | None = None,
) -> DemoData:
    """Every demo row, built in memory without touching a database (pure and deterministic)."""
    if customers < 1:
        raise ValueError("customers must be at least 1")
    moment = default_now() if now is None else _as_utc(now)
    return _Generator(random.Random(seed), moment, progress or _no_progress).build(customers)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


async def _refuse_unless_empty(conn: Any) -> None:
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM customer)"):
        raise ValueError("the database already has customers; demo data is only seeded into an empty database")
    clash = await conn.fetchval(
        """
        SELECT EXISTS (SELECT 1 FROM meter WHERE key = ANY($1::text[]))
            OR EXISTS (SELECT 1 FROM product WHERE name = ANY($2::text[]))
        """,
        [meter.key for meter in METERS],
        [name for _, name, _ in PRODUCTS],
    )
    if clash:
        raise ValueError(
            "the database already has meters or demo products/prices; seed only into a freshly migrated database"
        )


async def _copy_tables(conn: Any, data: DemoData, report: SeedProgress) -> None:
    """Binary COPY, table by table in foreign key order, in chunks so progress moves."""
    totals: dict[str, int] = {}
    for table in data.tables:
        stage = STAGE_LABELS[table.table]
        totals[stage] = totals.get(stage, 0) + len(table.rows)
    done = dict.fromkeys(totals, 0)
    for table in data.tables:
        stage = STAGE_LABELS[table.table]
        if done[stage] == 0:
            report(stage, 0, totals[stage])
        for start in range(0, len(table.rows), COPY_CHUNK_ROWS):
            chunk = table.rows[start : start + COPY_CHUNK_ROWS]
            await conn.copy_records_to_table(table.table, records=chunk, columns=list(table.columns))
            done[stage] += len(chunk)
            report(stage, done[stage], totals[stage])


# --------------------------------------------------------------------------------------------
# Catalog
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _MeterSpec:
    key: str
    name: str
    unit: str
    aggregation: str
    value_property: str | None
    unique_property: str | None


METERS = (
    _MeterSpec("api_calls", "API calls", "calls", MeterAggregation.SUM.value, "value", None),
    _MeterSpec("active_users", "Active users", "users", MeterAggregation.UNIQUE_COUNT.value, None, "user_id"),
    _MeterSpec("storage_gb", "Storage", "GB", MeterAggregation.MAX.value, "value", None),
)

# (product key, name, description)
PRODUCTS = (
    ("kickstart", "Kickstart", "For small teams getting started: core features, 3 users, email support."),
    ("pro", "Pro", "Per-seat plan for growing teams: unlimited projects, SSO, priority support."),
    ("custom", "Custom", "Enterprise agreement: dedicated support, uptime SLA, custom limits."),
    ("api_calls", "API calls", "Metered API usage, billed monthly in arrears."),
)

# (price key, product key, nickname, unit amount, currency, interval, metered, active)
PRICES = (
    ("kickstart_monthly_usd", "kickstart", "Kickstart monthly", 2900, "usd", MONTH, False, True),
    ("kickstart_yearly_usd", "kickstart", "Kickstart yearly", 29000, "usd", YEAR, False, True),
    ("kickstart_monthly_eur", "kickstart", "Kickstart monthly (EUR)", 2700, "eur", MONTH, False, True),
    ("kickstart_yearly_eur", "kickstart", "Kickstart yearly (EUR)", 27000, "eur", YEAR, False, True),
    ("pro_monthly_usd", "pro", "Pro per seat, monthly", 9900, "usd", MONTH, False, True),
    ("pro_yearly_usd", "pro", "Pro per seat, yearly", 99000, "usd", YEAR, False, True),
    ("pro_monthly_eur", "pro", "Pro per seat, monthly (EUR)", 9200, "eur", MONTH, False, True),
    ("pro_yearly_eur", "pro", "Pro per seat, yearly (EUR)", 92000, "eur", YEAR, False, True),
    ("pro_monthly_usd_2024", "pro", "Pro per seat, monthly (2024 price list)", 7900, "usd", MONTH, False, False),
    ("custom_monthly_usd", "custom", "Custom monthly", 49900, "usd", MONTH, False, True),
    ("custom_monthly_eur", "custom", "Custom monthly (EUR)", 46900, "eur", MONTH, False, True),
    ("api_calls_usd", "api_calls", "API calls (per call)", 1, "usd", MONTH, True, True),
    ("api_calls_eur", "api_calls", "API calls (per call, EUR)", 1, "eur", MONTH, True, True),
)

TIMES = "\N{MULTIPLICATION SIGN}"  # as in Stripe line descriptions: "3 <times> Pro (at $99.00 / month)"
TIER_PRODUCT = {KICKSTART: "kickstart", PRO: "pro", CUSTOM: "custom"}
# what happens to the invoice of a period that starts while collection is paused
PAUSED_INVOICE_STATUS = {
    PauseBehavior.KEEP_AS_DRAFT.value: INV_DRAFT,
    PauseBehavior.VOID.value: INV_VOID,
    PauseBehavior.MARK_UNCOLLECTIBLE.value: INV_UNCOLLECTIBLE,
}


@dataclass(frozen=True)
class _Price:
    id: uuid.UUID
    key: str
    product_name: str
    nickname: str
    unit_amount: int
    currency: str
    interval: str
    product_id: uuid.UUID | None = None

    def describe(self, quantity: int) -> str:
        money = _money(self.unit_amount, self.currency)
        if self.product_name == "API calls":
            return f"{quantity:,} {TIMES} API calls (at {money} per call)"
        return f"{quantity} {TIMES} {self.product_name} (at {money} / {self.interval.lower()})"


@dataclass(frozen=True)
class _ApiKey:
    id: uuid.UUID
    name: str
    prefix: str
    scopes: tuple[str, ...]

    @property
    def subject(self) -> str:
        return f"api-key:{self.name}"  # what api.auth.apikeys puts in an integration's principal


def _money(amount: int, currency: str) -> str:
    symbol = "€" if currency == "eur" else "$"
    return f"{symbol}{amount // 100:,}.{amount % 100:02d}"


# --------------------------------------------------------------------------------------------
# Calendar helpers
# --------------------------------------------------------------------------------------------


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@lru_cache(maxsize=1024)
def _days_in_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _add_months(anchor: datetime, months: int) -> datetime:
    """Stripe's billing-cycle arithmetic: the anchor's day, clamped to the month's last day."""
    total = anchor.year * 12 + anchor.month - 1 + months
    year, month0 = divmod(total, 12)
    day = min(anchor.day, _days_in_month(year, month0 + 1))
    return anchor.replace(year=year, month=month0 + 1, day=day)


def _period_index(anchor: datetime, step: int, moment: datetime) -> int:
    """The largest k >= 0 with anchor + k*step months <= moment (the period holding `moment`)."""
    months = (moment.year - anchor.year) * 12 + moment.month - anchor.month
    k = max(0, months // step - 1)
    while _add_months(anchor, (k + 1) * step) <= moment:
        k += 1
    return k


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _quota(rng: random.Random, n: int, weights: Sequence[tuple[T, float]]) -> list[T]:
    """Exactly n values in the given proportions (each at least once when n allows), shuffled."""
    raw = [share * n for _, share in weights]
    counts = [int(r) for r in raw]
    if n >= len(weights):
        counts = [max(1, c) for c in counts]
    order = sorted(range(len(weights)), key=lambda i: counts[i] - raw[i])
    i = 0
    while sum(counts) < n:
        counts[order[i % len(order)]] += 1
        i += 1
    while sum(counts) > n:
        counts[counts.index(max(counts))] -= 1
    values = [value for (value, _), count in zip(weights, counts, strict=True) for _ in range(count)]
    rng.shuffle(values)
    return values


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


@dataclass
class _Plan:
    """What one customer's story will be, decided before any row is built."""

    created_at: datetime
    tier: str
    status: str
    country: _Country
    currency: str
    interval: str
    metered: bool
    seats: int
    had_trial: bool
    flags: set[str] = field(default_factory=set)
    billing_start: datetime | None = None
    current_start: datetime | None = None
    pause_behavior: str | None = None
    retrying: bool = False  # a suspended customer's subscription is still PAST_DUE (retries go on)


@dataclass
class _Segment:
    """The licensed item from `since` on: which price and how many."""

    since: datetime
    price: _Price
    quantity: int


CUSTOMER_COLUMNS = (
    "id",
    "name",
    "email",
    "phone",
    "address_line1",
    "address_line2",
    "address_city",
    "address_state",
    "address_postal_code",
    "address_country",
    "tax_id",
    "tier",
    "industry",
    "status",
    "internal_team",
    "currency",
    "external_id",
    "stripe_customer_id",
    "suspended_reason",
    "notes",
    "payment_method_brand",
    "payment_method_last4",
    "payment_method_exp_month",
    "payment_method_exp_year",
    "created_at",
    "updated_at",
)
SUBSCRIPTION_COLUMNS = (
    "id",
    "customer_id",
    "status",
    "currency",
    "current_period_start",
    "current_period_end",
    "trial_end",
    "cancel_at_period_end",
    "pause_behavior",
    "pause_resumes_at",
    "canceled_at",
    "stripe_subscription_id",
    "stripe_updated_at",
    "created_at",
    "updated_at",
)
ITEM_COLUMNS = (
    "id",
    "subscription_id",
    "price_id",
    "quantity",
    "stripe_subscription_item_id",
    "created_at",
    "updated_at",
)
INVOICE_COLUMNS = (
    "id",
    "customer_id",
    "subscription_id",
    "number",
    "status",
    "currency",
    "subtotal",
    "total",
    "amount_due",
    "amount_paid",
    "amount_remaining",
    "amount_refunded",
    "hosted_invoice_url",
    "invoice_pdf_url",
    "due_date",
    "period_start",
    "period_end",
    "attempt_count",
    "next_payment_attempt",
    "finalized_at",
    "paid_at",
    "voided_at",
    "stripe_invoice_id",
    "stripe_updated_at",
    "created_at",
    "updated_at",
)
# positions in an invoice row (rows stay mutable lists until they are numbered)
INVOICE_INDEX = {name: i for i, name in enumerate(INVOICE_COLUMNS)}
INV_ID = INVOICE_INDEX["id"]
INV_NUMBER = INVOICE_INDEX["number"]
INV_STATUS = INVOICE_INDEX["status"]
INV_CURRENCY = INVOICE_INDEX["currency"]
INV_AMOUNT_DUE = INVOICE_INDEX["amount_due"]
INV_AMOUNT_PAID = INVOICE_INDEX["amount_paid"]
INV_REMAINING = INVOICE_INDEX["amount_remaining"]
INV_AMOUNT_REFUNDED = INVOICE_INDEX["amount_refunded"]
INV_ATTEMPTS = INVOICE_INDEX["attempt_count"]
INV_NEXT_ATTEMPT = INVOICE_INDEX["next_payment_attempt"]
INV_FINALIZED = INVOICE_INDEX["finalized_at"]
INV_PAID_AT = INVOICE_INDEX["paid_at"]
INV_VOIDED_AT = INVOICE_INDEX["voided_at"]
INV_STRIPE_UPDATED = INVOICE_INDEX["stripe_updated_at"]
INV_UPDATED = INVOICE_INDEX["updated_at"]
MRR_CHANGE_COLUMNS = (
    "subscription_id",
    "customer_id",
    "effective_at",
    "currency",
    "status",
    "paused",
    "product_id",
    "quantity",
    "mrr",
    "undiscounted_mrr",
    "discount_ends_at",
    "source",
    "recorded_at",
)
LINE_COLUMNS = (
    "id",
    "invoice_id",
    "description",
    "amount",
    "currency",
    "quantity",
    "price_id",
    "period_start",
    "period_end",
    "proration",
    "position",
    "stripe_line_id",
)
PAYMENT_COLUMNS = (
    "id",
    "invoice_id",
    "customer_id",
    "amount",
    "currency",
    "status",
    "failure_code",
    "failure_message",
    "stripe_payment_intent_id",
    "stripe_charge_id",
    "created_at",
    "updated_at",
)
REFUND_COLUMNS = (
    "id",
    "payment_id",
    "invoice_id",
    "amount",
    "currency",
    "reason",
    "status",
    "stripe_refund_id",
    "created_at",
    "updated_at",
)
USAGE_COLUMNS = (
    "customer_id",
    "meter_id",
    "value",
    "occurred_at",
    "idempotency_key",
    "properties",
    "received_at",
)
AUDIT_COLUMNS = (*HASHED_FIELDS, "prev_hash", "entry_hash")
METER_COLUMNS = (
    "id",
    "key",
    "name",
    "unit",
    "aggregation",
    "value_property",
    "unique_property",
    "stripe_event_name",
    "stripe_meter_id",
    "created_at",
    "updated_at",
)
PRODUCT_COLUMNS = ("id", "name", "description", "active", "stripe_product_id", "created_at", "updated_at")
PRICE_COLUMNS = (
    "id",
    "product_id",
    "nickname",
    "unit_amount",
    "currency",
    "interval",
    "usage_type",
    "meter_id",
    "active",
    "stripe_price_id",
    "created_at",
    "updated_at",
)
API_KEY_COLUMNS = (
    "id",
    "name",
    "prefix",
    "secret_hash",
    "scopes",
    "created_by",
    "last_used_at",
    "expires_at",
    "revoked_at",
    "rotated_grace_until",
    "replaced_by_id",
    "created_at",
    "updated_at",
)

API_ENDPOINTS = ("/v1/records", "/v1/records/search", "/v1/exports", "/v1/webhooks", "/v1/users", "/v1/reports")
STORAGE_REGIONS = ("us-east-1", "eu-west-1", "eu-central-1")
FAILURE_MESSAGES = ("Your card was declined.", "Your card has insufficient funds.", "Your card has expired.")
PARTIAL_REFUND_REASONS = (
    "requested_by_customer: seat reduction mid-cycle",
    "Service credit: API degradation incident",
    "Goodwill credit approved by account manager",
)
FULL_REFUND_REASONS = (
    "requested_by_customer: charged after cancellation request",
    "duplicate",
    "requested_by_customer: not used this month",
)


# RFC 4122 version 4: clear the version nibble and variant bits, then set 0100 and 10
_UUID_CLEAR_MASK = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID_V4_BITS = (0x4000 << 64) | (0x8000 << 48)
_new_object = object.__new__
_set_slot = object.__setattr__


class _Generator:
    def __init__(self, rng: random.Random, now: datetime, progress: SeedProgress) -> None:
        self.rng = rng
        self.rnd = rng.random
        self.now = now
        self.progress = progress
        self.window_start = _add_months(now, -12)
        self.usage_start = now - timedelta(days=30)
        self.customers: list[Row] = []
        self.subscriptions: list[Row] = []
        self.items: list[Row] = []
        self.mrr_changes: list[Row] = []
        self.invoices: list[list[Any]] = []
        self.lines: list[Row] = []
        self.payments: list[Row] = []
        self.refunds: list[Row] = []
        self.usage: list[Row] = []
        self.audit: list[tuple[Any, ...]] = []
        self.meter_ids: dict[str, uuid.UUID] = {}
        self.prices: dict[str, _Price] = {}
        self.api_keys: list[_ApiKey] = []

    # ---- small helpers ------------------------------------------------------------------

    # random.random() based draws: several times cheaper than randrange/randint, equally deterministic
    def below(self, n: int) -> int:
        return int(self.rnd() * n)

    def randint(self, low: int, high: int) -> int:
        return low + int(self.rnd() * (high - low + 1))

    def choice(self, options: Sequence[T]) -> T:
        return options[int(self.rnd() * len(options))]

    def uid(self) -> uuid.UUID:
        """Equal to uuid.UUID(int=getrandbits(128), version=4), built without UUID.__init__'s
        argument parsing (the way UUID.__setstate__ does): a quarter of a million ids are made."""
        value = (self.rng.getrandbits(128) & _UUID_CLEAR_MASK) | _UUID_V4_BITS
        made = _new_object(uuid.UUID)
        _set_slot(made, "int", value)
        _set_slot(made, "is_safe", uuid.SafeUUID.unknown)
        return made

    def fill(self, pattern: str) -> str:
        out = []
        for char in pattern:
            if char == "#":
                out.append(chr(48 + self.below(10)))
            elif char == "@":
                out.append(chr(65 + self.below(26)))
            else:
                out.append(char)
        return "".join(out)

    def between(self, start: datetime, end: datetime) -> datetime:
        """A whole-second moment in [start, end] (start when the range is empty)."""
        seconds = int((end - start).total_seconds())
        return start if seconds <= 0 else start + timedelta(seconds=self.below(seconds + 1))

    def price_for(self, product: str, interval: str, currency: str) -> _Price:
        suffix = "monthly" if interval == MONTH else "yearly"
        return self.prices[f"{product}_{suffix}_{currency}"]

    def staff(self, *roles: str) -> tuple[str, str]:
        role = roles[self.below(len(roles))]
        people = STAFF_BY_ROLE[role]
        return people[self.below(len(people))], role

    def add_audit(
        self,
        at: datetime,
        action: str,
        target_type: str,
        target_id: uuid.UUID,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        *,
        roles: tuple[str, ...] = ("operations",),
        api_key: _ApiKey | None = None,
        outcome: str = "SUCCESS",
    ) -> None:
        rng = self.rng
        request_id = f"req_{rng.getrandbits(96):024x}"
        if api_key is not None:
            subject, role, key_id = api_key.subject, None, api_key.id
            ip = f"192.0.2.{10 + self.below(20)}"
            user_agent = "ledgerline-backend/3.4.1 python-httpx/0.28.1"
        else:
            (subject, role), key_id = self.staff(*roles), None
            ip = f"203.0.113.{self.randint(1, 254)}" if rng.random() < 0.8 else f"198.51.100.{self.randint(1, 254)}"
            user_agent = STAFF_USER_AGENTS[self.below(len(STAFF_USER_AGENTS))]
        self.audit.append(
            (
                at,
                subject,
                role,
                key_id,
                action,
                target_type,
                str(target_id),
                before,
                after,
                outcome,
                request_id,
                ip,
                user_agent,
            )
        )

    # ---- the whole data set --------------------------------------------------------------

    def build(self, count: int) -> DemoData:
        self.progress(STAGE_GENERATE, 0, count)
        catalog = self.build_catalog()
        plans = self.plan_customers(count)
        for index, plan in enumerate(plans, start=1):
            self.build_customer(index, plan)
            if index % PROGRESS_EVERY_CUSTOMERS == 0 or index == count:
                self.progress(STAGE_GENERATE, index, count)
        invoices = self.number_invoices()
        self.usage.sort(key=itemgetter(6))  # ids ascend with received_at, as with live ingestion
        audit = self.chain_audit()
        return DemoData(
            tables=(
                *catalog,
                TableRows("customer", CUSTOMER_COLUMNS, self.customers),
                TableRows("subscription", SUBSCRIPTION_COLUMNS, self.subscriptions),
                TableRows("subscription_item", ITEM_COLUMNS, self.items),
                TableRows("subscription_mrr_change", MRR_CHANGE_COLUMNS, self.mrr_changes),
                TableRows("invoice", INVOICE_COLUMNS, invoices),
                TableRows("invoice_line", LINE_COLUMNS, self.lines),
                TableRows("payment", PAYMENT_COLUMNS, self.payments),
                TableRows("refund", REFUND_COLUMNS, self.refunds),
                TableRows("usage_event", USAGE_COLUMNS, self.usage),
                TableRows("audit_entry", AUDIT_COLUMNS, audit),
            )
        )

    def build_catalog(self) -> list[TableRows]:
        # the catalog predates the first customer (at most two years back)
        created = self.now - timedelta(days=760)
        meters: list[Row] = []
        for meter in METERS:
            meter_id = self.uid()
            self.meter_ids[meter.key] = meter_id
            meters.append(
                (
                    meter_id,
                    meter.key,
                    meter.name,
                    meter.unit,
                    meter.aggregation,
                    meter.value_property,
                    meter.unique_property,
                    meter.key,
                    f"mtr_demo_{meter.key}",
                    created,
                    created,
                )
            )
        products: list[Row] = []
        product_ids: dict[str, tuple[uuid.UUID, str]] = {}
        for key, name, description in PRODUCTS:
            product_id = self.uid()
            product_ids[key] = (product_id, name)
            # no Stripe ids: the catalog is created in whichever Stripe is configured on first use
            # (ensure_stripe_price), so the demo can subscribe customers to it
            products.append((product_id, name, description, True, None, created, created))
        prices: list[Row] = []
        for key, product_key, nickname, amount, currency, interval, metered, active in PRICES:
            price_id = self.uid()
            product_id, product_name = product_ids[product_key]
            price_meter_id = self.meter_ids["api_calls"] if metered else None
            usage_type = UsageType.METERED.value if metered else UsageType.LICENSED.value
            updated = created + timedelta(days=300) if not active else created
            prices.append(
                (
                    price_id,
                    product_id,
                    nickname,
                    amount,
                    currency,
                    interval,
                    usage_type,
                    price_meter_id,
                    active,
                    None,
                    created,
                    updated,
                )
            )
            self.prices[key] = _Price(price_id, key, product_name, nickname, amount, currency, interval, product_id)
        api_keys: list[Row] = []
        for name, scopes in (
            ("Product backend", ("customers:read", "customers:write", "subscriptions:write", "usage:write")),
            ("Northwind CRM (partner)", ("customers:read", "invoices:read")),
        ):
            # the prefix looks like a real one (12 hex characters, as api.auth.apikeys issues them)
            api_key = _ApiKey(self.uid(), name, f"{self.rng.getrandbits(48):012x}", scopes)
            prefix = api_key.prefix
            self.api_keys.append(api_key)
            # a SHA-256 hex digest is 64 characters: "!" + 64 matches no key, so demo keys cannot
            # authenticate; they only identify the integrations in the audit trail
            secret_hash = "!" + f"{self.rng.getrandbits(256):064x}"
            self.add_audit(
                created + timedelta(days=1),
                "createApiKey",
                "ApiKey",
                api_key.id,
                None,
                {
                    "name": name,
                    "prefix": prefix,
                    "scopes": list(scopes),
                    "expires_at": None,
                    "revoked_at": None,
                    "rotated_grace_until": None,
                },
                roles=("owner",),
            )
            api_keys.append(
                (
                    api_key.id,
                    name,
                    prefix,
                    secret_hash,
                    list(scopes),
                    STAFF_BY_ROLE["owner"][0],
                    self.now - HOUR,
                    None,
                    None,
                    None,
                    None,
                    created + timedelta(days=1),
                    created + timedelta(days=1),
                )
            )
        return [
            TableRows("meter", METER_COLUMNS, meters),
            TableRows("product", PRODUCT_COLUMNS, products),
            TableRows("price", PRICE_COLUMNS, prices),
            TableRows("api_key", API_KEY_COLUMNS, api_keys),
        ]

    # ---- phase 1: decide every customer's story ------------------------------------------

    def plan_customers(self, count: int) -> list[_Plan]:
        rng, now = self.rng, self.now
        tiers = _quota(rng, count, TIER_WEIGHTS)
        statuses = _quota(rng, count, STATUS_WEIGHTS)
        country_weights = [c.weight for c in COUNTRIES]
        seat_choices = (2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 40, 60)
        seat_weights = (9, 10, 9, 9, 7, 8, 7, 6, 5, 4, 3, 2, 1)
        plans: list[_Plan] = []
        for tier, status in zip(tiers, statuses, strict=True):
            country = rng.choices(COUNTRIES, country_weights)[0]
            currency = "eur" if country.eur and rng.random() < 0.9 else "usd"
            time_of_day = timedelta(seconds=self.below(86_400))
            if status == TRIAL:
                created = now - timedelta(seconds=self.randint(3_600, (TRIAL_DAYS - 1) * 86_400))
            elif status in (PAST_DUE, SUSPENDED):
                # the current period started a few days ago, so dunning is under way
                days_ago = self.randint(1, 12 if status == PAST_DUE else 20)
                months_ago = self.randint(1 if status == PAST_DUE else 2, 20)
                created = _add_months(now - timedelta(days=days_ago) + time_of_day - DAY, -months_ago)
            else:
                # more recent signups than old ones: a growing company
                low = 45 if status == CANCELED else 1
                days_ago = low + (730 - low) * (1 - rng.random() ** 0.6)
                created = now - timedelta(days=days_ago)
                created = created.replace(microsecond=0)
            interval = MONTH
            if tier != CUSTOM and status in (ACTIVE, CANCELED, TRIAL) and rng.random() < 0.2:
                interval = YEAR
            metered_share = {KICKSTART: 0.1, PRO: 0.4, CUSTOM: 0.7}[tier]
            metered = interval == MONTH and rng.random() < metered_share
            seats = rng.choices(seat_choices, seat_weights)[0] if tier == PRO else 1
            had_trial = status in (ACTIVE, CANCELED) and created < now - timedelta(days=20) and rng.random() < 0.5
            plan = _Plan(created, tier, status, country, currency, interval, metered, seats, had_trial)
            if status != TRIAL:
                plan.billing_start = created + timedelta(days=TRIAL_DAYS) if had_trial else created
                step = 12 if interval == YEAR else 1
                plan.current_start = _add_months(
                    plan.billing_start, _period_index(plan.billing_start, step, now) * step
                )
            plans.append(plan)
        self.assign_flags(plans)
        plans.sort(key=lambda p: p.created_at)
        return plans

    def assign_flags(self, plans: list[_Plan]) -> None:
        rng, now = self.rng, self.now
        count = len(plans)

        def pick(pool: list[int], share: float, minimum: int, flag: str) -> list[int]:
            chosen = rng.sample(pool, min(len(pool), max(minimum, round(share * count))))
            for i in chosen:
                plans[i].flags.add(flag)
            return chosen

        def billed_before(plan: _Plan, days: int) -> bool:
            return plan.billing_start is not None and plan.billing_start <= now - timedelta(days=days)

        def refundable(plan: _Plan) -> bool:
            """Sure to have an invoice paid days ago within the invoiced year."""
            if plan.status == CANCELED:  # canceled 30+ days after signing up, and inside the year
                return plan.created_at > self.window_start + timedelta(days=14)
            if plan.status != ACTIVE:
                return False
            if plan.interval == YEAR:
                return plan.current_start is not None and plan.current_start <= now - timedelta(days=35)
            return billed_before(plan, 70)  # even net-30 payers have paid the invoice before last

        active_monthly = [
            i for i, p in enumerate(plans) if p.status == ACTIVE and p.interval == MONTH and billed_before(p, 0)
        ]
        pick([i for i, p in enumerate(plans) if p.status in (ACTIVE, TRIAL)], 0.03, 1, "internal")
        # drafts exist shortly after a period starts: the customers whose period began most recently
        recent = sorted(active_monthly, key=lambda i: now - (plans[i].current_start or now))
        for i in recent[: min(len(recent), max(1, round(0.04 * count)))]:
            plans[i].flags.add("draft")
        free = [i for i in active_monthly if "draft" not in plans[i].flags]
        pick([i for i in free if billed_before(plans[i], 70)], 0.03, 1, "void")
        paused = set(pick([i for i in free if billed_before(plans[i], 35)], 0.02, 1, "paused"))
        pick([i for i in free if i not in paused], 0.04, 1, "cancel_at_period_end")
        refunds = pick(
            [i for i, p in enumerate(plans) if refundable(p)],
            0.05,
            2,
            "refund",
        )
        for n, i in enumerate(refunds):
            plans[i].flags.add("refund_full" if n == 0 or (n > 1 and rng.random() < 0.35) else "refund_partial")
        pick([i for i in active_monthly if billed_before(plans[i], 70)], 0.06, 0, "recovered")
        pick(
            [i for i, p in enumerate(plans) if p.tier != KICKSTART and p.interval == MONTH and billed_before(p, 60)],
            0.1,
            1,
            "plan_change",
        )
        pick([i for i, p in enumerate(plans) if p.status == TRIAL], 0.3, 1, "trial_extended")
        pick(list(range(count)), 0.1, 0, "profile_update")

    # ---- phase 2: one customer's rows ----------------------------------------------------

    def build_customer(self, seq: int, plan: _Plan) -> None:
        rng, now = self.rng, self.now
        customer_id = self.uid()
        created = plan.created_at
        country = plan.country
        internal = "internal" in plan.flags
        first = NAME_FIRST[self.below(len(NAME_FIRST))]
        second = NAME_SECOND[self.below(len(NAME_SECOND))]
        if internal:
            name = INTERNAL_NAMES[self.below(len(INTERNAL_NAMES))]
            email = f"billing+{seq}@ledgerline.test"
        else:
            legal = country.legal_forms[self.below(len(country.legal_forms))]
            name = f"{first} {second} {legal}" if rng.random() < 0.8 else f"{first} {second}"
            domain = f"{first}{second}".lower()
            if rng.random() < 0.6:
                local = EMAIL_LOCALS[self.below(len(EMAIL_LOCALS))]
            else:
                person = PERSON_FIRST[self.below(len(PERSON_FIRST))]
                local = f"{person}.{PERSON_LAST[self.below(len(PERSON_LAST))]}"
            email = f"{local}@{domain}.{API_EMAIL_DOMAIN}"
        city, state, postal = country.cities[self.below(len(country.cities))]
        street = country.streets[self.below(len(country.streets))]
        number = self.randint(1, 240)
        line1 = f"{number} {street}" if country.number_first else f"{street} {number}"
        line2 = None
        if rng.random() < 0.3:
            line2 = f"Suite {self.randint(100, 990)}" if country.code == "US" else f"Floor {self.randint(1, 12)}"
        tax_id = self.fill(country.tax_id) if rng.random() < country.tax_share else None
        industry = INDUSTRIES[self.below(len(INDUSTRIES))] if rng.random() < 0.95 else None
        notes = INTERNAL_NOTE if internal else (NOTES[self.below(len(NOTES))] if rng.random() < 0.1 else None)
        stripe_customer_id = f"cus_demo{customer_id.hex[:14]}"
        customer_updated = created
        suspended_reason: str | None = None

        backend = self.api_keys[0]
        signup_by_api = not internal and plan.tier != CUSTOM and rng.random() < 0.65
        self.add_audit(
            created,
            "createCustomer",
            "Customer",
            customer_id,
            None,
            {"name": name, "email": email, "tier": plan.tier, "currency": plan.currency},
            roles=("operations", "owner"),
            api_key=backend if signup_by_api else None,
        )
        if "profile_update" in plan.flags:
            at = self.between(created + HOUR, now - HOUR)
            before: dict[str, Any]
            after: dict[str, Any]
            if tax_id is not None and rng.random() < 0.5:
                before, after = {"tax_id": None}, {"tax_id": tax_id}
            else:
                before, after = {"address_line1": f"{number + 7} {street}"}, {"address_line1": line1}
            self.add_audit(
                at, "updateCustomer", "Customer", customer_id, before, after, roles=("support", "support", "operations")
            )
            customer_updated = max(customer_updated, at)

        customer_updated, suspended_reason = self.build_subscription(customer_id, plan, customer_updated)
        brand, last4, exp_month, exp_year = self.card(plan)
        self.customers.append(
            (
                customer_id,
                name,
                email,
                self.fill(country.phone),
                line1,
                line2,
                city,
                state,
                self.fill(postal),
                country.code,
                tax_id,
                plan.tier,
                industry,
                plan.status,
                internal,
                plan.currency,
                f"acct_{seq:06d}",
                stripe_customer_id,
                suspended_reason,
                notes,
                brand,
                last4,
                exp_month,
                exp_year,
                created,
                customer_updated,
            )
        )

    def card(self, plan: _Plan) -> tuple[str | None, str | None, int | None, int | None]:
        """The default card mirrored from Stripe: (brand, last4, exp month, exp year). Custom-tier
        customers pay by bank transfer; some trials have not added a card yet; some failing
        customers' cards have expired."""
        rng, now = self.rng, self.now
        if plan.tier == CUSTOM or (plan.status == TRIAL and rng.random() < 0.5):
            return None, None, None, None
        brand = CARD_BRANDS[bisect.bisect(CARD_BRAND_CUMULATIVE, rng.random())]
        if plan.status in (PAST_DUE, SUSPENDED) and rng.random() < 0.3:
            expiry = _add_months(now, -self.randint(1, 6))
        else:
            expiry = _add_months(now, self.randint(1, 60))
        return brand, f"{self.below(10_000):04d}", expiry.month, expiry.year

    def build_subscription(
        self, customer_id: uuid.UUID, plan: _Plan, customer_updated: datetime
    ) -> tuple[datetime, str | None]:
        """The subscription, its items, invoices and usage; returns the customer's (updated_at,
        suspended_reason)."""
        rng, now = self.rng, self.now
        subscription_id = self.uid()
        created = plan.created_at + timedelta(seconds=2)
        currency = plan.currency
        backend = self.api_keys[0]
        product = TIER_PRODUCT[plan.tier]
        final_price = self.price_for(product, plan.interval, currency)
        segments = [_Segment(created, final_price, plan.seats)]
        metered_price = self.prices[f"api_calls_{currency}"] if plan.metered else None
        updated = created
        trial_end: datetime | None = None
        canceled_at: datetime | None = None
        cancel_at_period_end = False
        pause_behavior: str | None = None
        pause_resumes_at: datetime | None = None
        suspended_reason: str | None = None
        paused_at: datetime | None = None
        suspended_at: datetime | None = None

        if plan.status == TRIAL or plan.billing_start is None:
            trial_end = plan.created_at + timedelta(days=TRIAL_DAYS)
            if "trial_extended" in plan.flags:
                at = self.between(plan.created_at + HOUR, now - HOUR)
                extended = trial_end + timedelta(days=7)
                self.add_audit(
                    at,
                    "extendTrial",
                    "Subscription",
                    subscription_id,
                    {"trial_end": _iso(trial_end)},
                    {"trial_end": _iso(extended)},
                    roles=("support",),
                )
                trial_end, updated = extended, at
            self.subscriptions.append(
                (
                    subscription_id,
                    customer_id,
                    SubscriptionStatus.TRIALING.value,
                    currency,
                    plan.created_at,
                    trial_end,
                    trial_end,
                    False,
                    None,
                    None,
                    None,
                    f"sub_demo{subscription_id.hex[:14]}",
                    updated,
                    created,
                    updated,
                )
            )
            self.add_items(subscription_id, segments[-1], metered_price, created)
            self.add_mrr_history(customer_id, subscription_id, currency, [(created, TRIALING_SUB, False, segments[-1])])
            self.add_trial_invoice(customer_id, subscription_id, plan, segments[-1], trial_end)
            self.add_usage(customer_id, plan, now)
            return customer_updated, None

        billing_start = plan.billing_start
        if plan.had_trial:
            trial_end = billing_start
        step = 12 if plan.interval == YEAR else 1
        end = now
        sub_status = SubscriptionStatus.ACTIVE.value
        if plan.status == CANCELED:
            requested = self.between(plan.created_at + timedelta(days=30), now - DAY)
            boundary = _add_months(billing_start, (_period_index(billing_start, step, requested) + 1) * step)
            at_period_end = rng.random() < 0.6 and boundary <= now - HOUR
            canceled_at = boundary if at_period_end else requested
            end = canceled_at
            sub_status = SubscriptionStatus.CANCELED.value
            after: dict[str, Any] = {"cancel_at_period_end": True} if at_period_end else {"status": "CANCELED"}
            self.add_audit(
                requested,
                "cancelSubscription",
                "Subscription",
                subscription_id,
                {"status": "ACTIVE"},
                after,
                roles=("operations", "finance", "owner"),
            )
            updated = canceled_at
        elif plan.status == PAST_DUE:
            sub_status = SubscriptionStatus.PAST_DUE.value
        elif plan.status == SUSPENDED:
            plan.retrying = rng.random() < 0.25
            sub_status = SubscriptionStatus.PAST_DUE.value if plan.retrying else SubscriptionStatus.UNPAID.value

        last_k = _period_index(billing_start, step, end - timedelta(seconds=1))
        current_start = _add_months(billing_start, last_k * step)
        current_end = _add_months(billing_start, (last_k + 1) * step)

        change_from, change_to = billing_start + timedelta(days=20), min(end, now) - timedelta(days=5)
        if "plan_change" in plan.flags and change_to > change_from:
            change_at = self.between(change_from, change_to)
            if plan.tier == PRO and rng.random() < 0.5:
                old = _Segment(created, self.price_for("kickstart", MONTH, currency), 1)
            elif plan.tier == PRO:
                old = _Segment(created, final_price, max(1, plan.seats + self.choice((-3, -2, -1, 1, 2))))
            else:
                old = _Segment(created, self.price_for("pro", MONTH, currency), self.choice((5, 10, 20)))
            segments = [old, _Segment(change_at, final_price, plan.seats)]
            self.add_audit(
                change_at,
                "changeSubscription",
                "Subscription",
                subscription_id,
                {"price": str(old.price.id), "quantity": old.quantity},
                {"price": str(final_price.id), "quantity": plan.seats},
                roles=("operations", "finance", "owner"),
                api_key=backend if plan.tier == PRO and rng.random() < 0.5 else None,
            )
            updated = max(updated, change_at)

        if "paused" in plan.flags:
            pause_behavior = self.choice(list(PAUSED_INVOICE_STATUS))
            plan.pause_behavior = pause_behavior
            pause_resumes_at = _add_months(current_start, self.randint(1, 2))
            at = self.between(max(billing_start + HOUR, current_start - timedelta(days=6)), current_start - HOUR)
            paused_at = at
            self.add_audit(
                at,
                "pauseSubscription",
                "Subscription",
                subscription_id,
                {"pause_behavior": None},
                {"pause_behavior": pause_behavior, "resumes_at": _iso(pause_resumes_at)},
                roles=("operations", "finance"),
            )
            updated = max(updated, at)
        if "cancel_at_period_end" in plan.flags:
            cancel_at_period_end = True
            at = self.between(current_start + HOUR, now - HOUR)
            self.add_audit(
                at,
                "cancelSubscription",
                "Subscription",
                subscription_id,
                {"cancel_at_period_end": False},
                {"cancel_at_period_end": True},
                roles=("operations", "finance", "owner"),
            )
            updated = max(updated, at)

        first_k = (
            0 if billing_start > self.window_start else (_period_index(billing_start, step, self.window_start) + 1)
        )
        self.build_invoices(
            customer_id, subscription_id, plan, segments, metered_price, range(first_k, last_k + 1), step
        )
        # a renewal moves the current period; a cancellation or status change is newer still
        updated = max(updated, current_start)
        if plan.had_trial:  # TRIAL -> ACTIVE on the customer when the trial converted
            customer_updated = max(customer_updated, billing_start)
        if canceled_at is not None:
            customer_updated = max(customer_updated, canceled_at)

        if plan.status == SUSPENDED:
            suspended_at = self.between(
                _add_months(current_start, -1) + timedelta(days=15), _add_months(current_start, -1) + timedelta(days=20)
            )
            suspended_reason = (
                f"Payment failed {len(DUNNING_OFFSETS)} times; unpaid since {_add_months(current_start, -1):%Y-%m-%d}"
            )
            self.add_audit(
                suspended_at,
                "suspendCustomer",
                "Customer",
                customer_id,
                {"status": PAST_DUE},
                {"status": SUSPENDED, "suspended_reason": suspended_reason},
                roles=("operations", "finance"),
            )
            customer_updated = max(customer_updated, suspended_at)

        self.subscriptions.append(
            (
                subscription_id,
                customer_id,
                sub_status,
                currency,
                current_start,
                current_end,
                trial_end,
                cancel_at_period_end,
                pause_behavior,
                pause_resumes_at,
                canceled_at,
                f"sub_demo{subscription_id.hex[:14]}",
                updated,
                created,
                updated,
            )
        )
        self.add_items(subscription_id, segments[-1], metered_price, created)
        story = self.subscription_story(plan, created, segments, current_start, paused_at, suspended_at, canceled_at)
        self.add_mrr_history(customer_id, subscription_id, currency, story)
        self.add_usage(customer_id, plan, end)
        return customer_updated, suspended_reason

    def subscription_story(
        self,
        plan: _Plan,
        created: datetime,
        segments: list[_Segment],
        current_start: datetime,
        paused_at: datetime | None,
        suspended_at: datetime | None,
        canceled_at: datetime | None,
    ) -> list[tuple[datetime, str, bool, _Segment]]:
        """What the subscription went through, as (when, status, paused, licensed item) from each
        moment on: trial, paid start, plan change, pause, dunning, suspension, cancellation."""
        status, paused, segment = (TRIALING_SUB if plan.had_trial else ACTIVE_SUB), False, segments[0]
        events: list[tuple[datetime, str | None, bool | None, _Segment | None]] = [(created, status, False, segment)]
        if plan.had_trial and plan.billing_start is not None:
            events.append((plan.billing_start, ACTIVE_SUB, None, None))
        events.extend((later.since, None, None, later) for later in segments[1:])
        if paused_at is not None:
            events.append((paused_at, None, True, None))
        if plan.status in (PAST_DUE, SUSPENDED):
            # the failed renewal whose dunning is under way (for suspended customers, the one before)
            failed = current_start if plan.status == PAST_DUE else _add_months(current_start, -1)
            events.append((failed + HOUR, PAST_DUE_SUB, None, None))
        if suspended_at is not None and not plan.retrying:
            events.append((suspended_at, UNPAID_SUB, None, None))
        if canceled_at is not None:
            events.append((canceled_at, CANCELED_SUB, None, None))
        story: list[tuple[datetime, str, bool, _Segment]] = []
        for moment, new_status, new_paused, new_segment in sorted(events, key=itemgetter(0)):
            status = new_status or status
            paused = paused if new_paused is None else new_paused
            segment = new_segment or segment
            story.append((moment, status, paused, segment))
        return story

    def add_mrr_history(
        self,
        customer_id: uuid.UUID,
        subscription_id: uuid.UUID,
        currency: str,
        story: list[tuple[datetime, str, bool, _Segment]],
    ) -> None:
        """The subscription's MRR history rows, normalised as the mirror does (api/revenue/history)."""
        for moment, status, paused, segment in story:
            price = segment.price
            assert price.product_id is not None
            item = PricedItem(price.product_id, price.unit_amount, PriceInterval(price.interval), segment.quantity)
            facts = normalise(currency, SubscriptionStatus(status), paused, [item], None)
            self.mrr_changes.append(
                (
                    subscription_id,
                    customer_id,
                    moment,
                    currency,
                    status,
                    paused,
                    price.product_id,
                    facts.quantity,
                    facts.mrr,
                    facts.undiscounted_mrr,
                    None,
                    MrrSource.SEED.value,
                    moment,
                )
            )

    def add_items(
        self, subscription_id: uuid.UUID, segment: _Segment, metered: _Price | None, created: datetime
    ) -> None:
        item_id = self.uid()
        since = max(segment.since, created)
        self.items.append(
            (item_id, subscription_id, segment.price.id, segment.quantity, f"si_demo{item_id.hex[:14]}", created, since)
        )
        if metered is not None:
            item_id = self.uid()
            self.items.append((item_id, subscription_id, metered.id, 1, f"si_demo{item_id.hex[:14]}", created, created))

    # ---- invoices, payments, refunds -------------------------------------------------------

    def build_invoices(
        self,
        customer_id: uuid.UUID,
        subscription_id: uuid.UUID,
        plan: _Plan,
        segments: list[_Segment],
        metered: _Price | None,
        periods: range,
        step: int,
    ) -> None:
        """One invoice per period in `periods`, with its lines, payments and maybe a refund."""
        now = self.now
        assert plan.billing_start is not None
        anchor = plan.billing_start
        ks = list(periods)
        if not ks:
            return
        # period boundaries, from the period before the first invoiced one (metered usage is in arrears)
        base = max(0, ks[0] - 1)
        bounds = [_add_months(anchor, k * step) for k in range(base, ks[-1] + 2)]
        last = ks[-1]
        net_terms = plan.tier == CUSTOM  # pays by bank transfer, net 30
        void_k = self.choice(ks[:-1]) if "void" in plan.flags and len(ks) > 1 else None
        recovered_k = self.choice(ks[:-1]) if "recovered" in plan.flags and len(ks) > 1 else None
        paid_invoices: list[tuple[list[Any], uuid.UUID]] = []

        for k in ks:
            start, end = bounds[k - base], bounds[k + 1 - base]
            segment = segments[0]
            for candidate in segments:
                if candidate.since <= start:
                    segment = candidate
            lines: list[tuple[str, int, int, _Price, datetime, datetime]] = [
                (
                    segment.price.describe(segment.quantity),
                    segment.price.unit_amount * segment.quantity,
                    segment.quantity,
                    segment.price,
                    start,
                    end,
                ),
            ]
            if metered is not None and k > 0:
                calls = self.randint(2_000, 30_000) * (3 if plan.tier == CUSTOM else 1)
                previous = bounds[k - 1 - base]
                lines.append((metered.describe(calls), calls * metered.unit_amount, calls, metered, previous, start))

            if k == void_k:
                # issued twice by mistake: the duplicate was voided, the reissue paid
                voided = self.add_invoice(
                    customer_id,
                    subscription_id,
                    plan,
                    start,
                    end,
                    lines,
                    INV_VOID,
                    created_at=start,
                    net_terms=net_terms,
                )
                voided_at = voided[INV_FINALIZED] + timedelta(hours=self.randint(2, 48))
                voided[INV_VOIDED_AT] = voided_at
                voided[INV_UPDATED] = voided[INV_STRIPE_UPDATED] = voided_at
                voided[INV_REMAINING] = 0
                self.add_audit(
                    voided_at,
                    "voidInvoice",
                    "Invoice",
                    voided[INV_ID],
                    {"status": INV_OPEN},
                    {"status": INV_VOID, "reason": "duplicate"},
                    roles=("finance",),
                )
                row, payment_id = self.settle(
                    customer_id,
                    plan,
                    start,
                    end,
                    lines,
                    subscription_id,
                    created_at=voided_at + timedelta(minutes=10),
                    net_terms=net_terms,
                    failures=0,
                )
            else:
                status = INV_PAID
                failures = 1 if k == recovered_k and not net_terms else 0
                if k == last:
                    if "draft" in plan.flags:
                        status = INV_DRAFT  # held for review before finalizing
                    elif plan.pause_behavior is not None:
                        status = PAUSED_INVOICE_STATUS[plan.pause_behavior]
                    elif plan.status in (PAST_DUE, SUSPENDED):
                        status = INV_OPEN
                elif plan.status == SUSPENDED and k == ks[-2]:
                    status = INV_UNCOLLECTIBLE  # dunning exhausted
                if start + HOUR > now:
                    status = INV_DRAFT  # Stripe finalizes an hour after creating the invoice
                if status == INV_PAID:
                    row, payment_id = self.settle(
                        customer_id,
                        plan,
                        start,
                        end,
                        lines,
                        subscription_id,
                        created_at=start,
                        net_terms=net_terms,
                        failures=failures,
                    )
                else:
                    row = self.add_invoice(
                        customer_id,
                        subscription_id,
                        plan,
                        start,
                        end,
                        lines,
                        status,
                        created_at=start,
                        net_terms=net_terms,
                    )
                    payment_id = None
                    self.unpaid(row, plan, customer_id)
            if payment_id is not None and row[INV_STATUS] == INV_PAID:
                paid_invoices.append((row, payment_id))

        if "refund_full" in plan.flags or "refund_partial" in plan.flags:
            candidates = [entry for entry in paid_invoices if entry[0][INV_PAID_AT] <= now - timedelta(days=2)]
            if candidates:
                row, payment_id = candidates[self.below(len(candidates))]
                self.refund(row, payment_id, plan)

    def add_invoice(
        self,
        customer_id: uuid.UUID,
        subscription_id: uuid.UUID,
        plan: _Plan,
        start: datetime,
        end: datetime,
        lines: list[tuple[str, int, int, _Price, datetime, datetime]],
        status: str,
        *,
        created_at: datetime,
        net_terms: bool,
    ) -> list[Any]:
        invoice_id = self.uid()
        stripe_id = f"in_demo{invoice_id.hex[:16]}"
        total = 0
        for position, (description, amount, quantity, price, line_start, line_end) in enumerate(lines):
            line_id = self.uid()
            self.lines.append(
                (
                    line_id,
                    invoice_id,
                    description,
                    amount,
                    plan.currency,
                    quantity,
                    price.id,
                    line_start,
                    line_end,
                    False,
                    position,
                    f"il_demo{line_id.hex[:16]}",
                )
            )
            total += amount
        draft = status == INV_DRAFT
        finalized = None if draft else created_at + HOUR
        due = (finalized or created_at + HOUR) + timedelta(days=30 if net_terms else 7)
        hosted = None if draft else f"https://invoice.example.test/i/{stripe_id}"
        pdf = None if draft else f"https://invoice.example.test/i/{stripe_id}/pdf"
        updated = finalized or created_at
        row: list[Any] = [
            invoice_id,
            customer_id,
            subscription_id,
            None,
            status,
            plan.currency,
            total,
            total,
            total,
            0,
            total,
            0,
            hosted,
            pdf,
            due,
            start,
            end,
            0,
            None,
            finalized,
            None,
            None,
            stripe_id,
            updated,
            created_at,
            updated,
        ]
        self.invoices.append(row)
        return row

    def add_trial_invoice(
        self, customer_id: uuid.UUID, subscription_id: uuid.UUID, plan: _Plan, segment: _Segment, trial_end: datetime
    ) -> None:
        """Stripe opens a trial with a 0.00 invoice, finalized and paid at once."""
        start = plan.created_at
        line = (
            f"Trial period for {segment.price.describe(segment.quantity)}",
            0,
            segment.quantity,
            segment.price,
            start,
            trial_end,
        )
        row = self.add_invoice(
            customer_id, subscription_id, plan, start, trial_end, [line], INV_PAID, created_at=start, net_terms=False
        )
        for column in (INV_FINALIZED, INV_PAID_AT, INV_STRIPE_UPDATED, INV_UPDATED):
            row[column] = start

    def settle(
        self,
        customer_id: uuid.UUID,
        plan: _Plan,
        start: datetime,
        end: datetime,
        lines: list[tuple[str, int, int, _Price, datetime, datetime]],
        subscription_id: uuid.UUID,
        *,
        created_at: datetime,
        net_terms: bool,
        failures: int,
    ) -> tuple[list[Any], uuid.UUID | None]:
        """A finalized invoice that was paid (after `failures` declined attempts), or is still open
        when a bank transfer has not arrived yet."""
        now = self.now
        row = self.add_invoice(
            customer_id, subscription_id, plan, start, end, lines, INV_PAID, created_at=created_at, net_terms=net_terms
        )
        finalized: datetime = row[INV_FINALIZED]
        total = row[INV_AMOUNT_DUE]
        if net_terms:
            paid_at = finalized + timedelta(days=self.randint(2, 28), seconds=self.below(86_400))
        else:
            paid_at = finalized + timedelta(seconds=self.randint(5, 900))
        attempts = 0
        for attempt in range(failures):
            at = finalized + DUNNING_OFFSETS[attempt] + timedelta(seconds=self.randint(5, 900))
            self.add_payment(row, customer_id, PAY_FAILED, at)
            attempts += 1
        if failures:
            paid_at = finalized + DUNNING_OFFSETS[failures] + timedelta(seconds=self.randint(5, 900))
        if paid_at > now:
            # not paid yet: a bank transfer in transit (or a retry scheduled)
            row[INV_STATUS] = INV_OPEN
            row[INV_ATTEMPTS] = attempts
            if attempts:
                row[INV_NEXT_ATTEMPT] = paid_at
            return row, None
        payment_id = self.add_payment(row, customer_id, PAY_OK, paid_at)
        row[INV_ATTEMPTS] = attempts + (0 if net_terms else 1)
        row[INV_AMOUNT_PAID] = total
        row[INV_REMAINING] = 0
        row[INV_PAID_AT] = paid_at
        row[INV_UPDATED] = row[INV_STRIPE_UPDATED] = paid_at
        return row, payment_id

    def unpaid(self, row: list[Any], plan: _Plan, customer_id: uuid.UUID) -> None:
        """Declined attempts for OPEN / UNCOLLECTIBLE invoices; VOID and DRAFT stay as they are."""
        rng, now = self.rng, self.now
        status = row[INV_STATUS]
        finalized: datetime | None = row[INV_FINALIZED]
        if finalized is None:
            return
        if status == INV_VOID:
            voided_at = finalized + timedelta(minutes=1)
            row[INV_VOIDED_AT] = voided_at
            row[INV_REMAINING] = 0
            row[INV_UPDATED] = row[INV_STRIPE_UPDATED] = voided_at
            return
        if status not in (INV_OPEN, INV_UNCOLLECTIBLE):
            return
        attempt_times = [finalized + offset + timedelta(seconds=self.randint(5, 900)) for offset in DUNNING_OFFSETS]
        if status == INV_UNCOLLECTIBLE and plan.status != SUSPENDED:
            # paused with mark_uncollectible: written off at once, never charged
            row[INV_UPDATED] = row[INV_STRIPE_UPDATED] = finalized + timedelta(minutes=1)
            return
        if status == INV_UNCOLLECTIBLE:
            made = attempt_times
            upcoming = None
        elif plan.status == SUSPENDED:
            made = attempt_times[:1]
            # an UNPAID subscription is no longer retried; a PAST_DUE one still is
            upcoming = now + timedelta(days=self.randint(1, 3)) if plan.retrying else None
        else:
            made = [at for at in attempt_times if at <= now]
            later = [at for at in attempt_times if at > now]
            upcoming = later[0] if later else None
        for at in made:
            self.add_payment(row, customer_id, PAY_FAILED, at)
        if len(made) > 1 and plan.status == PAST_DUE and rng.random() < 0.5:
            self.add_audit(
                made[1],
                "retryInvoicePayment",
                "Invoice",
                row[INV_ID],
                {"status": INV_OPEN},
                {"status": INV_OPEN, "error": "card_declined"},
                roles=("finance",),
                outcome="FAILURE",
            )
        row[INV_ATTEMPTS] = len(made)
        row[INV_NEXT_ATTEMPT] = upcoming
        changed = made[-1] if made else finalized
        if status == INV_UNCOLLECTIBLE:
            changed = changed + HOUR
        row[INV_UPDATED] = row[INV_STRIPE_UPDATED] = min(changed, now)

    def add_payment(self, invoice: list[Any], customer_id: uuid.UUID, status: str, at: datetime) -> uuid.UUID:
        payment_id = self.uid()
        failure_code = failure_message = None
        if status == PAY_FAILED:
            failure_code = "card_declined"
            failure_message = FAILURE_MESSAGES[self.below(len(FAILURE_MESSAGES))]
        hex_id = payment_id.hex
        self.payments.append(
            (
                payment_id,
                invoice[INV_ID],
                customer_id,
                invoice[INV_AMOUNT_DUE],
                invoice[INV_CURRENCY],
                status,
                failure_code,
                failure_message,
                f"pi_demo{hex_id[:16]}",
                f"ch_demo{hex_id[16:]}",
                at,
                at,
            )
        )
        return payment_id

    def refund(self, row: list[Any], payment_id: uuid.UUID, plan: _Plan) -> None:
        now = self.now
        paid = row[INV_AMOUNT_PAID]
        full = "refund_full" in plan.flags
        if full:
            amount, reason = paid, FULL_REFUND_REASONS[self.below(len(FULL_REFUND_REASONS))]
        else:
            amount = max(100, paid * self.choice((10, 20, 25, 50)) // 100 // 100 * 100)
            reason = PARTIAL_REFUND_REASONS[self.below(len(PARTIAL_REFUND_REASONS))]
        at = self.between(row[INV_PAID_AT] + DAY, min(row[INV_PAID_AT] + timedelta(days=20), now - DAY))
        refund_id = self.uid()
        status = RefundStatus.SUCCEEDED.value
        self.refunds.append(
            (
                refund_id,
                payment_id,
                row[INV_ID],
                amount,
                row[INV_CURRENCY],
                reason,
                status,
                f"re_demo{refund_id.hex[:16]}",
                at,
                at,
            )
        )
        row[INV_AMOUNT_REFUNDED] = amount
        row[INV_UPDATED] = row[INV_STRIPE_UPDATED] = at
        # support may refund up to SUPPORT_REFUND_LIMIT (100.00); finance does most refunds
        roles = ("finance", "finance", "owner", "support") if amount <= 10_000 else ("finance", "finance", "owner")
        self.add_audit(
            at,
            "refundInvoice",
            "Invoice",
            row[INV_ID],
            {"amount_refunded": 0},
            {"amount_refunded": amount, "refund_id": str(refund_id), "reason": reason},
            roles=roles,
        )

    # ---- usage -----------------------------------------------------------------------------

    def add_usage(self, customer_id: uuid.UUID, plan: _Plan, end: datetime) -> None:
        if not plan.metered:
            return
        rng = self.rng
        start = max(plan.created_at, self.usage_start)
        span = int((end - start).total_seconds())
        if span < 3_600:
            return
        share = span / (30 * 86_400)
        scale = 3 if plan.tier == CUSTOM else 1
        api_calls = self.meter_ids["api_calls"]
        active_users = self.meter_ids["active_users"]
        storage = self.meter_ids["storage_gb"]
        append = self.usage.append
        counter = 0

        def moment() -> tuple[datetime, datetime]:
            occurred = start + timedelta(seconds=self.below(span))
            return occurred, occurred + timedelta(milliseconds=self.randint(40, 4_000))

        for _ in range(max(2, round(self.randint(18, 36) * share))):
            occurred, received = moment()
            counter += 1
            endpoint = API_ENDPOINTS[self.below(len(API_ENDPOINTS))]
            append(
                (
                    customer_id,
                    api_calls,
                    Decimal(self.randint(5, 800) * scale),
                    occurred,
                    f"api_calls-{counter:04d}-{rng.getrandbits(32):08x}",
                    f'{{"endpoint": "{endpoint}", "source": "gateway"}}',
                    received,
                )
            )
        users = max(3, plan.seats * 2)
        for _ in range(max(1, round(self.randint(6, 14) * share))):
            occurred, received = moment()
            counter += 1
            append(
                (
                    customer_id,
                    active_users,
                    Decimal(1),
                    occurred,
                    f"active_users-{counter:04d}-{rng.getrandbits(32):08x}",
                    f'{{"user_id": "usr_{self.below(users):04d}"}}',
                    received,
                )
            )
        size = self.randint(5, 400) * scale
        region = STORAGE_REGIONS[self.below(len(STORAGE_REGIONS))]
        for _ in range(max(1, round(self.randint(3, 8) * share))):
            occurred, received = moment()
            counter += 1
            gigabytes = Decimal(size * 1000 + self.below(1000)).scaleb(-3)
            append(
                (
                    customer_id,
                    storage,
                    gigabytes,
                    occurred,
                    f"storage_gb-{counter:04d}-{rng.getrandbits(32):08x}",
                    f'{{"region": "{region}"}}',
                    received,
                )
            )

    # ---- finishing passes -------------------------------------------------------------------

    def number_invoices(self) -> list[Row]:
        """Numbers in finalization order, a sequence per year: LL-2026-000123. Drafts have none."""
        finalized = [row for row in self.invoices if row[INV_FINALIZED] is not None]
        finalized.sort(key=itemgetter(INV_FINALIZED))
        sequence: dict[int, int] = {}
        for row in finalized:
            year = row[INV_FINALIZED].year
            sequence[year] = sequence.get(year, 0) + 1
            row[INV_NUMBER] = f"LL-{year}-{sequence[year]:06d}"
        return [tuple(row) for row in self.invoices]

    def chain_audit(self) -> list[Row]:
        """Sort the trail by time and hash-chain it from the genesis hash."""
        self.progress(STAGE_AUDIT_CHAIN, 0, len(self.audit))
        self.audit.sort(key=itemgetter(0))
        rows: list[Row] = []
        previous = GENESIS_HASH
        names = AUDIT_COLUMNS[:13]
        dumps = json.dumps
        for entry in self.audit:
            content = dict(zip(names, entry, strict=True))
            digest = entry_hash(previous, content)
            before, after = entry[7], entry[8]
            rows.append(
                (
                    *entry[:7],
                    None if before is None else dumps(before),
                    None if after is None else dumps(after),
                    *entry[9:],
                    previous,
                    digest,
                )
            )
            previous = digest
        self.progress(STAGE_AUDIT_CHAIN, len(rows), len(rows))
        return rows
