"""Value types shared by several contracts (codes, money, percentages, languages)."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import Field, PlainSerializer, Strict

#: Money in CNY as an exact decimal, serialised as a JSON string ("1234.50") so no float
#: ever touches an amount.
Money = Annotated[
    Decimal,
    Field(ge=Decimal("0"), le=Decimal("1000000000"), max_digits=14, decimal_places=2),
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json"),
]

#: ``Money`` as an ingress contract takes it, also in a strict model: a decimal string
#: ("1280.50", the documented wire form) or a JSON number, never a boolean (pydantic refuses
#: ``true``/``false`` for a Decimal even when lax) nor anything else.
WireMoney = Annotated[Money, Strict(False)]

#: A percentage (0–100, two decimals), serialised like ``Money`` as a JSON string ("12.50").
Pct = Annotated[
    Decimal,
    Field(ge=Decimal("0"), le=Decimal("100"), max_digits=5, decimal_places=2),
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json"),
]


class Channel(StrEnum):
    """Where a complaint came from."""

    APP = "app"
    HOTLINE = "hotline"
    WEB = "web"
    LETTER = "letter"
    REGULATOR_TRANSFER = "regulator_transfer"
    SOCIAL_MEDIA = "social_media"
    IN_PERSON = "in_person"


class Product(StrEnum):
    """The product a complaint is about."""

    CREDIT_CARD = "credit_card"
    CONSUMER_LOAN = "consumer_loan"
    INSTALMENT = "instalment"
    PAYMENTS = "payments"
    INSURANCE = "insurance"
    WEALTH = "wealth"
    OTHER = "other"


class Language(StrEnum):
    """Languages the product speaks: zh-CN first, English second."""

    ZH_CN = "zh-CN"
    EN = "en"


class Priority(StrEnum):
    """How urgently a case is handled."""

    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class Category(StrEnum):
    """Complaint categories (labels 0–5 of the 黑猫投诉 data, in that order)."""

    COLLECTION_CONDUCT = "collection_conduct"  # 催收行为类
    OTHER = "other"  # 其他类
    CONTRACT_TERMS = "contract_terms"  # 合同条款类
    PRICING_FEES = "pricing_fees"  # 定价收费类
    CUSTOMER_SERVICE = "customer_service"  # 客户服务类
    MARKETING = "marketing"  # 营销宣传类
