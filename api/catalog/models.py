from __future__ import annotations

import enum
import uuid

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.common.columns import enum_column
from api.db import Base, Timestamps, UUIDPrimaryKey


class PriceInterval(enum.StrEnum):
    MONTH = "MONTH"
    YEAR = "YEAR"


class UsageType(enum.StrEnum):
    LICENSED = "LICENSED"
    METERED = "METERED"


class Product(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "product"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(String(1000))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True, server_default="true")
    stripe_product_id: Mapped[str | None] = mapped_column(String(255), unique=True)

    prices: Mapped[list[Price]] = relationship(back_populates="product", lazy="raise")


class Price(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "price"

    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("product.id"), nullable=False, index=True)
    nickname: Mapped[str | None] = mapped_column(String(200))
    unit_amount: Mapped[int] = mapped_column(Integer, nullable=False)  # minor units
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    interval: Mapped[PriceInterval] = mapped_column(enum_column(PriceInterval, "price_interval"), nullable=False)
    usage_type: Mapped[UsageType] = mapped_column(enum_column(UsageType, "price_usage_type"), nullable=False)
    meter_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("meter.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True, server_default="true")
    stripe_price_id: Mapped[str | None] = mapped_column(String(255), unique=True)

    product: Mapped[Product] = relationship(back_populates="prices", lazy="raise")

    __table_args__ = (Index("ix_price_currency_interval", "currency", "interval"),)
