"""Authority (授权): what each role may offer alone, and who must approve the rest.

An offer is measured by its total monetary concession (waivers, interest forgone, refunds,
compensation), its largest waiver percentage, its longest instalment plan, its longest
deferral and how far its instalment plan exceeds the disputed balance plus the costs the
agent stated (by default only a manager or the committee may go above it). The lowest role
whose limits cover all five is the *required role*; a proposer
below it cannot show the offer to the customer until someone at or above the required role
— never the proposer — approves it (approval chain: requested → approved / rejected with a
reason). Limits are configured per role (``PARLEY_NEGOTIATION_AUTHORITY``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from services.negotiation.settings import RoleLimit

ROLE_ORDER = ("agent", "team_lead", "manager", "committee")
STAFF_ROLES = frozenset(ROLE_ORDER)


def rank(role: str) -> int:
    """Return a role's rank in the approval chain (0 for roles without authority)."""
    return ROLE_ORDER.index(role) + 1 if role in ROLE_ORDER else 0


@dataclass(frozen=True)
class OfferMetrics:
    """What authority limits are measured against."""

    concession: Decimal
    max_waiver_pct: Decimal
    plan_months: int
    deferral_months: int
    plan_over_balance: Decimal = Decimal("0")


def exceeded(limit: RoleLimit, m: OfferMetrics) -> list[str]:
    """Return which limits ``m`` exceeds (empty when the role may offer it alone)."""
    out = []
    if limit.max_concession is not None and m.concession > limit.max_concession:
        out.append(f"concession {m.concession} CNY > {limit.max_concession}")
    if limit.max_waiver_pct is not None and m.max_waiver_pct > limit.max_waiver_pct:
        out.append(f"waiver {m.max_waiver_pct}% > {limit.max_waiver_pct}%")
    if limit.max_plan_months is not None and m.plan_months > limit.max_plan_months:
        out.append(f"instalment plan {m.plan_months} months > {limit.max_plan_months}")
    if limit.max_deferral_months is not None and m.deferral_months > limit.max_deferral_months:
        out.append(f"deferral {m.deferral_months} months > {limit.max_deferral_months}")
    if limit.max_plan_over_balance is not None and m.plan_over_balance > limit.max_plan_over_balance:
        out.append(f"instalment plan exceeds the disputed balance plus stated costs by {m.plan_over_balance} CNY")
    return out


def required_role(limits: Mapping[str, RoleLimit], m: OfferMetrics) -> str:
    """Return the lowest role whose limits cover the offer."""
    for role in ROLE_ORDER:
        if not exceeded(limits[role], m):
            return role
    return ROLE_ORDER[-1]


def may_approve(approver_role: str, required: str) -> bool:
    """Whether a role may approve an offer that needs ``required``."""
    return rank(approver_role) >= rank(required) > 0
