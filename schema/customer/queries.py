from __future__ import annotations

import strawberry

from api.auth.permissions import Capability
from api.customer.service import CustomerFilter, CustomerOrder, count_customers, get_customer, list_customers
from schema.connections import paginate_reads
from schema.context import Info
from schema.customer.lookahead import prefetch_customer_page
from schema.customer.types import Customer, CustomerStatusEnum, CustomerTierEnum
from schema.health.types import HealthBandEnum
from schema.permissions import guarded
from schema.scalars import AfterArg, Connection, DateRangeInput, FirstArg, date_range, parse_id

CustomerOrderEnum = strawberry.enum(CustomerOrder, name="CustomerOrder")


@strawberry.input(description="Every condition given must hold.")
class CustomerFilterInput:
    search: str | None = strawberry.field(default=None, description="Part of the name or email, or an exact id.")
    tier: list[CustomerTierEnum] | None = None  # type: ignore[valid-type]
    status: list[CustomerStatusEnum] | None = None  # type: ignore[valid-type]
    industry: str | None = None
    internal_team: bool | None = None
    created_at: DateRangeInput | None = None
    health_band: list[HealthBandEnum] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Current health band (customers whose health was never computed match none)."
    )

    def to_filter(self) -> CustomerFilter:
        return CustomerFilter(
            search=self.search,
            tiers=tuple(self.tier or ()),
            statuses=tuple(self.status or ()),
            industry=self.industry,
            internal_team=self.internal_team,
            created=date_range(self.created_at, "filter.createdAt"),
            health_bands=tuple(self.health_band or ()),
        )


@strawberry.type
class CustomerQueries:
    @guarded(Capability.CUSTOMER_READ, description="Customers, filtered and ordered, a page at a time.")
    async def customers(
        self,
        info: Info,
        filter: CustomerFilterInput | None = None,
        order_by: CustomerOrderEnum = CustomerOrder.CREATED_AT_DESC,  # type: ignore[valid-type]
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> Connection[Customer] | None:
        flt = filter.to_filter() if filter else CustomerFilter()
        page = await paginate_reads(
            info,
            first,
            after,
            lambda s, p: list_customers(s, flt, order_by, p),
            lambda s: count_customers(s, flt),
            Customer.from_model,
        )
        await prefetch_customer_page(info, [edge.node.local_id for edge in page.edges])
        return page

    @guarded(Capability.CUSTOMER_READ, description="One customer by id (global id or UUID).")
    async def customer(self, info: Info, id: strawberry.ID) -> Customer | None:
        customer_id = parse_id(id, "Customer")
        async with info.context.read_session() as session:
            return Customer.from_model(await get_customer(session, customer_id))
