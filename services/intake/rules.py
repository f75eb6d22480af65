"""Intake's business rules as pure functions: deadline, priority, language, case numbers,
and where a complaint belongs (new case, linked to an open case, or a repeat of a closed one).

No I/O here: handlers feed these functions plain data, so every rule is unit-tested in
milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from shared.clock import Deadline, beijing_day, due
from shared.contracts.common import Channel, Language, Priority, Product

# ------------------------------------------------------------------ deadline


def decision_deadline(received_at: datetime, days: int) -> Deadline:
    """Return the decision deadline of a complaint received at ``received_at`` (``shared.clock.due``).

    《银行业保险业消费投诉处理管理办法》(2020): a decision within 15 days of receipt; the clock
    restarts when a repeated complaint brings new facts (a restart is a new receipt). Counted in
    Beijing days: the day of receipt is not counted, the period ends at 24:00 Beijing of day
    D+``days``, moved to the end of the next working day when that is a rest day (民法典 第二百零一条,
    第二百零三条); ``provisional`` when the holiday package lacks a year counted
    (docs/clock.md). Extensions for complex cases are decided later, not at intake.
    """
    return due(received_at, days)


def deadline_date_text(deadline_at: datetime, language: Language) -> str:
    """The deadline's Beijing day as a customer reads it (the regulatory day, whatever zone is shown)."""
    day = beijing_day(deadline_at)
    if language is Language.EN:
        return f"{day.day} {day:%B %Y}"
    return f"{day.year}年{day.month}月{day.day}日"


def local_date_text(moment: datetime, zone: ZoneInfo, language: Language) -> str:
    """Show a moment as a date in ``zone``, the way a customer reads it."""
    local = moment.astimezone(zone)
    if language is Language.EN:
        return local.strftime("%d %B %Y").lstrip("0")
    return f"{local.year}年{local.month}月{local.day}日"


# ------------------------------------------------------------------ case numbers


#: Highest sequence of a day's case numbers (six digits).
MAX_CASE_SEQUENCE = 999_999


def case_number(prefix: str, day: str, sequence: int) -> str:
    """Format a human case number, e.g. ``TS-20261129-000123``."""
    if not 0 < sequence <= MAX_CASE_SEQUENCE:
        raise ValueError("case-number sequence must be 1..999999 per day")
    return f"{prefix}-{day}-{sequence:06d}"


def case_number_day(now: datetime, zone: ZoneInfo) -> str:
    """Return the ``YYYYMMDD`` of ``now`` in ``zone`` (the day a case number belongs to)."""
    return now.astimezone(zone).strftime("%Y%m%d")


# ------------------------------------------------------------------ language

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")


def detect_language(text: str) -> Language:
    """Chinese when CJK characters make up at least a fifth of the letters, else English."""
    cjk = len(_CJK.findall(text))
    latin_words = len(_LATIN.findall(text)) / 5  # roughly one word per five Latin letters
    if cjk == 0 and latin_words == 0:
        return Language.ZH_CN
    return Language.ZH_CN if cjk >= 0.2 * (cjk + latin_words) else Language.EN


# ------------------------------------------------------------------ priority

#: Words that show a customer in a vulnerable situation (illness, age, hardship).
VULNERABILITY_WORDS: tuple[str, ...] = (
    "老人", "老年", "七十岁", "八十岁", "残疾", "残障", "重病", "大病", "癌", "白血病", "住院", "手术",
    "化疗", "孕", "失业", "下岗", "低保", "困难户", "单亲", "抑郁", "精神病", "学生", "未成年",
    "elderly", "disabled", "disability", "cancer", "hospital", "surgery", "chemotherapy",
    "pregnan", "unemployed", "laid off", "lost my job", "veteran", "dementia", "terminal",
    "medical bills", "depress", "widow", "student",
)
#: Words that suggest a risk to life: always urgent.
SELF_HARM_WORDS: tuple[str, ...] = (
    "自杀", "轻生", "跳楼", "活不下去", "不想活", "寻死", "去死", "了结自己",
    "suicide", "kill myself", "end my life", "don't want to live", "do not want to live",
)


@dataclass(frozen=True)
class PriorityInputs:
    """What priority is computed from."""

    channel: Channel
    product: Product
    text: str
    amount_disputed: Decimal | None = None
    vulnerable_flag: bool = False
    is_repeat: bool = False


@dataclass(frozen=True)
class PriorityThresholds:
    """Amount thresholds (CNY)."""

    high_amount: Decimal = Decimal("50000")
    elevated_amount: Decimal = Decimal("10000")
    low_amount: Decimal = Decimal("200")


def _found(text: str, words: tuple[str, ...]) -> list[str]:
    lowered = text.lower()
    return [w for w in words if w in lowered]


def assess_priority(
    inputs: PriorityInputs, thresholds: PriorityThresholds = PriorityThresholds()
) -> tuple[Priority, list[str]]:
    """Return the priority and the reasons for it (points from channel, amount, product, words).

    Points: regulator transfer +3 (the regulator watches the answer), social media +1
    (public), repeat +1, amount ≥ high +2 or ≥ elevated +1, wealth/insurance +1 (mis-selling
    is regulatorily sensitive), vulnerable customer +2. Words of self-harm make it urgent
    outright. ≥5 urgent, ≥3 high, 0 with a small known amount low, else normal.
    """
    points = 0
    reasons: list[str] = []
    if _found(inputs.text, SELF_HARM_WORDS):
        return Priority.URGENT, ["self_harm_words"]
    if inputs.channel is Channel.REGULATOR_TRANSFER:
        points += 3
        reasons.append("regulator_transfer")
    elif inputs.channel is Channel.SOCIAL_MEDIA:
        points += 1
        reasons.append("social_media")
    if inputs.is_repeat:
        points += 1
        reasons.append("repeat_complaint")
    amount = inputs.amount_disputed
    if amount is not None and amount >= thresholds.high_amount:
        points += 2
        reasons.append("high_amount")
    elif amount is not None and amount >= thresholds.elevated_amount:
        points += 1
        reasons.append("elevated_amount")
    if inputs.product in (Product.WEALTH, Product.INSURANCE):
        points += 1
        reasons.append(f"product_{inputs.product.value}")
    if inputs.vulnerable_flag or _found(inputs.text, VULNERABILITY_WORDS):
        points += 2
        reasons.append("vulnerable_customer")
    if points >= 5:
        return Priority.URGENT, reasons
    if points >= 3:
        return Priority.HIGH, reasons
    if points == 0 and amount is not None and amount < thresholds.low_amount:
        return Priority.LOW, ["small_amount"]
    return Priority.NORMAL, reasons


_PRIORITY_ORDER = [Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.URGENT]


def higher_priority(a: Priority, b: Priority) -> Priority:
    """Return the more urgent of two priorities."""
    return max(a, b, key=_PRIORITY_ORDER.index)


# ------------------------------------------------------------------ placement


class Role(StrEnum):
    """How a complaint entered the case register."""

    NEW_CASE = "new_case"
    LINKED = "linked"
    REPEAT = "repeat"


@dataclass(frozen=True)
class CaseSummary:
    """What placement needs to know about an existing case of the same customer."""

    case_id: str
    case_number: str
    status: str  # open | closed
    product: Product
    matter_ref: str | None
    last_received_at: datetime
    closed_at: datetime | None = None


@dataclass(frozen=True)
class Placement:
    """Where a complaint goes."""

    role: Role
    case: CaseSummary | None = None
    reason: str = ""


def same_matter(case: CaseSummary, product: Product, matter_ref: str | None) -> bool:
    """Same matter: same product and, when both name one, the same account/contract."""
    if case.product is not product:
        return False
    return case.matter_ref is None or matter_ref is None or case.matter_ref == matter_ref


def place_complaint(
    *,
    received_at: datetime,
    product: Product,
    matter_ref: str | None,
    about_case_number: str | None,
    cases: list[CaseSummary],
    duplicate_window: timedelta,
    repeat_window: timedelta,
) -> Placement:
    """Decide whether a complaint opens a case, joins an open one, or repeats a closed one.

    ``cases`` are the same customer's cases. A complaint naming one of them by number is
    about that case. Otherwise: the most recent open case about the same matter whose last
    complaint is within ``duplicate_window`` takes it as a linked complaint (CBIRC: repeated
    complaints about the same matter may be merged); failing that, a case about the same
    matter closed within ``repeat_window`` makes it a repeat that opens a new linked case.
    """
    if about_case_number:
        named = next((c for c in cases if c.case_number == about_case_number), None)
        if named is not None and named.status == "open":
            return Placement(Role.LINKED, named, "names_open_case")
        if named is not None:
            return Placement(Role.REPEAT, named, "names_closed_case")
    ordered = sorted(cases, key=lambda c: c.last_received_at, reverse=True)
    for case in ordered:
        if (
            case.status == "open"
            and same_matter(case, product, matter_ref)
            and abs(received_at - case.last_received_at) <= duplicate_window
        ):
            return Placement(Role.LINKED, case, "same_matter_within_window")
    for case in ordered:
        closed_at = case.closed_at or case.last_received_at
        if (
            case.status == "closed"
            and same_matter(case, product, matter_ref)
            and received_at - closed_at <= repeat_window
        ):
            return Placement(Role.REPEAT, case, "same_matter_as_closed_case")
    return Placement(Role.NEW_CASE)


# ------------------------------------------------------------------ new facts


@dataclass(frozen=True)
class Facts:
    """What a complaint says, reduced to what tells whether it brings new facts."""

    text: str
    amount_disputed: Decimal | None = None
    attachment_refs: frozenset[str] = field(default_factory=frozenset)


def _shingles(text: str) -> set[str]:
    compact = re.sub(r"\s+", "", text.lower())
    if len(compact) < 2:
        return {compact}
    return {compact[i : i + 2] for i in range(len(compact) - 1)}


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of character bigrams (works for Chinese and English alike)."""
    sa, sb = _shingles(a), _shingles(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def new_facts(
    new: Facts, earlier: list[Facts], *, threshold: float, declared: bool | None = None
) -> tuple[bool, list[str]]:
    """Whether a linked complaint brings new facts, with the reasons found.

    The channel's own judgement (``declared``) wins. Otherwise new attachments, a disputed
    amount not named before, or a text unlike every earlier one count as new facts.
    """
    if declared is not None:
        return declared, ["declared_by_channel"]
    reasons: list[str] = []
    seen_refs = frozenset().union(*(f.attachment_refs for f in earlier)) if earlier else frozenset()
    if new.attachment_refs - seen_refs:
        reasons.append("new_attachments")
    amounts = {f.amount_disputed for f in earlier if f.amount_disputed is not None}
    if new.amount_disputed is not None and new.amount_disputed not in amounts:
        reasons.append("new_amount")
    if not earlier or max(similarity(new.text, f.text) for f in earlier) < threshold:
        reasons.append("different_account_of_events")
    return bool(reasons), reasons


# ------------------------------------------------------------------ duplicates of a channel complaint

#: The DLQ reason code of a complaint id seen before with different content.
CONFLICTING_DUPLICATE = "conflicting_duplicate"

_CENT = Decimal("0.01")


@dataclass(frozen=True)
class Fingerprint:
    """Hashes of a validated submission: of the whole, and of each top-level field.

    Equal content gives equal hashes however the channel spelled it (key order, a time zone,
    ``"600"`` or ``600.00``, an absent optional field or its default). The hashes stand in for
    the content when a second message with the same complaint id is compared with the first;
    the field hashes only tell *which* fields differ, never what they hold.
    """

    content_hash: str
    field_hashes: dict[str, str]


def _canonical(value: object) -> object:
    if isinstance(value, datetime):
        utc = value.astimezone(ZoneInfo("UTC"))
        return utc.isoformat(timespec="milliseconds")
    if isinstance(value, Decimal):
        return format(value.quantize(_CENT), "f")
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def _digest(value: object) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint(fields: dict[str, object]) -> Fingerprint:
    """Fingerprint a validated submission's fields (``ComplaintSubmission.model_dump()``)."""
    canonical = {str(name): _canonical(value) for name, value in fields.items()}
    return Fingerprint(
        content_hash=_digest(canonical),
        field_hashes={name: _digest([name, value]) for name, value in canonical.items()},
    )


def same_content(registered_hash: str | None, fingerprint_: Fingerprint) -> bool:
    """Whether a redelivered complaint is the one registered (no hash kept: registered before
    hashes were, so it counts as the same — a redelivery must never be dead-lettered)."""
    return registered_hash is None or registered_hash == fingerprint_.content_hash


def differing_fields(registered: dict[str, str], received: dict[str, str]) -> list[str]:
    """The top-level fields whose hashes differ (a field only one side has counts), sorted."""
    return sorted(name for name in registered.keys() | received.keys()
                  if registered.get(name) != received.get(name))


def conflict_reason(key: str, fields: list[str]) -> str:
    """The DLQ reason of a conflicting duplicate: the code, the complaint, the fields (no values)."""
    named = ", ".join(fields) if fields else "not known (the first version kept no field hashes)"
    return (f"{CONFLICTING_DUPLICATE}: complaint {key} is already registered with different "
            f"content; fields that differ: {named}")


# ------------------------------------------------------------------ several workers, one customer


def pending_blocks(
    entry: dict[str, str],
    case: dict[str, object] | None,
    *,
    ours: bool,
    age: timedelta,
    stale_after: timedelta,
) -> bool:
    """Whether another worker's committed but not yet applied placement must be waited for.

    A customer document names the effects of its last placement (``pending``): a case to be
    opened (``kind="new"``) or a complaint to be linked to an open case (``kind="link"``).
    Placing more of that customer's complaints before those effects are visible could open
    a second case for one matter or overwrite the linked case's deadline, so a reader waits
    while one is outstanding — unless it is its own complaint (a retry redoes it), it is
    applied (the case exists / holds the complaint), it can no longer apply (the case was
    closed meanwhile; its worker places the complaint afresh), or it is older than
    ``stale_after`` (its worker died; the complaint's redelivery places it afresh).
    """
    if ours or age > stale_after:
        return False
    if entry.get("kind") == "new":
        return case is None
    if case is None:
        return False  # a link names an existing case; a missing one cannot be waited for
    keys = case.get("complaint_keys") or []
    held = isinstance(keys, list) and entry.get("key") in keys
    return not held and case.get("status") == "open"
