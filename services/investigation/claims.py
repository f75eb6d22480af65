"""What the customer claims: read checkable allegations out of the complaint text.

A claim is something the institution's own records can confirm or contradict (twenty
collection calls a day, calls to family, a fee never agreed, a rate above the legal line,
a loan the customer never took). Amounts and counts the customer gives are kept, so the
records can be compared with them. Chinese first; English complaints get the same claims
through English patterns. Pure functions: no I/O.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

#: claim code → (zh, en) description.
CLAIMS: dict[str, tuple[str, str]] = {
    "collection_frequency": ("催收频率过高", "too many collection contacts"),
    "collection_off_hours": ("非合理时间催收", "collection contacts at unreasonable hours"),
    "collection_third_party": ("向第三人催收或泄露债务", "collection via third parties / debt disclosed"),
    "collection_abuse": ("催收威胁辱骂", "threats or abuse in collection"),
    "excessive_rate": ("综合年化利率过高", "cost of credit above the legal line"),
    "upfront_deduction": ("砍头息（放款时预扣费用）", "fees deducted from the loan up front"),
    "unauthorised_fee": ("未经同意收费/扣费", "fees charged without agreement"),
    "late_fees": ("违约金、罚息过高", "late fees and penalty interest too high"),
    "early_settlement": ("提前还款受阻或收费不当", "early settlement refused or overcharged"),
    "unauthorised_account": ("非本人办理/冒用身份", "account or loan not opened by the customer"),
    "misleading_sales": ("销售误导、虚假宣传", "misleading sales or advertising"),
    "service_failure": ("客服推诿、不处理", "customer service failed to handle the matter"),
    "credit_report": ("征信记录有误", "wrong credit-report entry"),
    "hardship_refused": ("困难协商被拒", "hardship arrangement refused"),
}

_ZH_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}


def zh_number(text: str) -> int | None:
    """Read a small number written in digits or Chinese numerals (几十 → 30, 十几 → 15)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    if text in ("几十", "数十"):
        return 30
    if text in ("十几", "十多"):
        return 15
    if text in ("几", "数"):
        return 5
    if text in ("上百", "几百", "数百"):
        return 100
    total, current = 0, 0
    for ch in text:
        if ch in _ZH_DIGITS:
            current = _ZH_DIGITS[ch]
        elif ch == "十":
            total += (current or 1) * 10
            current = 0
        elif ch == "百":
            total += (current or 1) * 100
            current = 0
        else:
            return None
    total += current
    return total or None


@dataclass(frozen=True)
class Claims:
    """The claims read in one complaint, with the numbers the customer gave."""

    codes: tuple[str, ...] = ()
    contacts_per_day: int | None = None
    claimed_apr: Decimal | None = None
    principal: Decimal | None = None
    received: Decimal | None = None
    term: int | None = None
    monthly_payment: Decimal | None = None
    days_late: int | None = None
    fee_kinds: tuple[str, ...] = ()
    hardship: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def has(self, code: str) -> bool:
        return code in self.codes


class Caseless:
    """A case-insensitive pattern that searches ASCII text without ``re.IGNORECASE``.

    Under IGNORECASE Python's ``re`` finds no literal prefix to skip ahead to, so it tries every
    branch at every position of the text: the English patterns were the dearest Python in
    investigating a complaint (English complaints are long). On ASCII text IGNORECASE is
    exactly "equal after ``lower()``" (the other characters ``re`` folds onto ASCII letters,
    İ ı ſ K, are not ASCII), so the lower-cased pattern searched over the lower-cased text
    matches where the IGNORECASE pattern matches, with the same spans. Any other text is
    searched with the IGNORECASE pattern itself (``folded`` gives None for it).
    """

    __slots__ = ("_lower", "pattern")

    def __init__(self, source: str) -> None:
        if re.search(r"\\[A-Z]", source):  # \S, \W, \D, \B ... would change meaning lower-cased
            raise ValueError(f"an upper-case escape in {source!r}")
        if any(not ch.isascii() and (ch.lower() != ch or ch.upper() != ch) for ch in source):
            raise ValueError(f"a cased letter outside ASCII in {source!r}")
        self.pattern = re.compile(source, re.I)
        self._lower = re.compile(source.lower())

    def search(self, text: str, lowered: str | None) -> re.Match[str] | None:
        """Search ``text`` case-insensitively; ``lowered`` is ``folded(text)`` (computed once
        for the many patterns a text is searched with). A match's groups come from the
        lower-cased text when ``lowered`` is given."""
        return self._lower.search(lowered) if lowered is not None else self.pattern.search(text)


def folded(text: str) -> str | None:
    """``text`` lower-cased when ``Caseless`` may search it so (ASCII), else None."""
    return text.lower() if text.isascii() else None


_NUM = r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
_COUNT = r"(\d+|[一二两三四五六七八九十百几数]+)"

_ZH: dict[str, re.Pattern[str]] = {
    "collection_frequency": re.compile(
        rf"(一天|每天|每日|一日|天天|一上午|一下午)[^。，,；;]{{0,8}}?{_COUNT}[多余]?[个次通遍]|"
        r"(轰炸|狂打|不停地?打|频繁|反复)[^。]{0,6}(电话|短信|来电)|电话轰炸|爆通讯录|每天都(是|有)?[^。]{0,6}(电话|催收)|天天[^。]{0,6}(电话|催)"
    ),
    "collection_off_hours": re.compile(r"凌晨|半夜|深夜|晚上(十|11|12|十一|十二)点|夜里|早上(5|6|7|五|六|七)点|休息时间"),
    "collection_third_party": re.compile(
        r"(打|联系|骚扰|发短信|告知|通知)[^。，]{0,8}(家人|父母|爸|妈|亲戚|朋友|同事|领导|单位|老板|紧急联系人|通讯录|老家)|"
        r"(家人|父母|亲戚|朋友|同事|领导|单位|紧急联系人|通讯录)[^。，]{0,6}(被|收到|接到)[^。]{0,6}(电话|短信|催收)|爆通讯录"
    ),
    "collection_abuse": re.compile(r"威胁|恐吓|辱骂|谩骂|侮辱|恶言|上门|暴力催收|爆通讯录|骂人|报案通知"),
    "excessive_rate": re.compile(r"高利贷|利息[^。，]{0,6}(高|太高|过高)|利率[^。，]{0,6}(高|超过)|年化|24%|36%|百分之(二十四|三十六|24|36)|超过国家规定|irr", re.I),
    "upfront_deduction": re.compile(r"砍头息|到手|实际到账|实际拿到|实际放款|预扣|先扣"),
    "unauthorised_fee": re.compile(
        r"(擅自|无故|私自|偷偷|莫名|不明|未经[^。，]{0,6}同意|不知情)[^。]{0,10}(扣|收|费)|"
        r"(会员费|服务费|保险费|担保费|咨询费|手续费|年费|权益|加速包|增值服务)"
    ),
    "late_fees": re.compile(r"违约金|滞纳金|罚息|逾期费|逾期利息"),
    "early_settlement": re.compile(r"提前还款|提前结清|提前还清"),
    "unauthorised_account": re.compile(
        r"非本人|并非是?本人|不是本人|冒用|盗用|冒名|被盗|盗刷|从未(申请|办理|注册|借)|没有(申请|办理|借过)|本人并未|未本人|身份被"
    ),
    "misleading_sales": re.compile(r"虚假宣传|误导|诱导|欺骗|骗我|承诺|忽悠|套路|夸大|未告知|没有告知|没告知|捆绑"),
    "service_failure": re.compile(r"推诿|踢皮球|不处理|不予处理|没人(理|管|处理)|联系不上|打不通|不回复|没有回复|态度(差|恶劣|极差)|敷衍|石沉大海"),
    "credit_report": re.compile(r"征信"),
    "hardship_refused": re.compile(r"(停息|个性化分期|协商还款|延期还款|分期还款|减免)[^。]{0,20}(不同意|拒绝|不给|不予|无果|未果|不让|没有同意)|(失业|疫情|生病|住院|困难|没有收入)[^。]{0,30}(协商|分期|停息)"),
}

_EN: dict[str, Caseless] = {
    "collection_frequency": Caseless(r"(\d+|several|multiple|many|numerous)\s+(times|calls)\s+(a|per|each)\s+day|calls? (me )?(every day|daily|constantly|non-?stop)|harass"),
    "collection_off_hours": Caseless(r"(late at night|middle of the night|after 9\s?pm|before 8\s?am|at night|early morning)"),
    "collection_third_party": Caseless(r"(called|contacted|texted|told)\s+(my\s+)?(family|mother|father|parents|wife|husband|employer|boss|co-?workers?|neighbou?rs?|friends?|relatives?)"),
    "collection_abuse": Caseless(r"threat|abusive|yell|curs|intimidat|profan"),
    "excessive_rate": Caseless(r"interest rate|APR|usur|predatory|too much interest"),
    "upfront_deduction": Caseless(r"deducted (from|up ?front)|origination fee"),
    "unauthorised_fee": Caseless(r"(unauthori[sz]ed|never agreed|without (my )?(consent|permission))[^.]{0,30}(fee|charge)|(fee|charge)s? (I|we) (never|did not|didn't) (agree|authori)"),
    "late_fees": Caseless(r"late (fee|charge)|penalt"),
    "early_settlement": Caseless(r"pay (it |the loan )?off early|early (payoff|repayment|settlement)|prepayment"),
    "unauthorised_account": Caseless(r"identity theft|not my (account|loan)|never (opened|applied|authori)|fraudulent(ly)? (opened|account)|stolen identity"),
    "misleading_sales": Caseless(r"mislead|misrepresent|false advertis|deceptive|lied|promised"),
    "service_failure": Caseless(r"no response|never (responded|called back|got back)|runaround|unable to reach|hung up|rude"),
    "credit_report": Caseless(r"credit report|credit bureau|credit score"),
    "hardship_refused": Caseless(r"(hardship|lost my job|unemploy|medical)[^.]{0,60}(refus|denied|declin|would not)"),
}

_FEE_KINDS: dict[str, Caseless] = {
    "service_fee": Caseless(r"服务费|咨询费|居间|手续费|service fee|processing fee"),
    "membership_fee": Caseless(r"会员|权益|加速包|增值服务|membership"),
    "insurance_premium": Caseless(r"保险费|保费|insurance"),
    "guarantee_fee": Caseless(r"担保费|guarantee fee"),
    "annual_fee": Caseless(r"年费|annual fee"),
}


_PER_DAY_EN = Caseless(r"(\d+)\s+(times|calls)\s+(a|per|each)\s+day")
_APR = Caseless(r"(年化|年利率|利率|APR)[^。，\d]{0,10}(\d{1,3}(?:\.\d+)?)\s*%")
_HARDSHIP = Caseless(r"失业|疫情|生病|住院|困难|没有收入|收入[^。]{0,4}(低|少|减少)|hardship|lost my job|unemploy")


def _money(text: str, wan: bool = False) -> Decimal | None:
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    return value * 10000 if wan else value


def _amount_after(keywords: str, text: str) -> Decimal | None:
    match = re.search(rf"(?:{keywords})[^。，,；;\d]{{0,8}}{_NUM}\s*(万)?\s*(?:元|块)?", text)
    if not match:
        return None
    value = _money(match.group(1), bool(match.group(2)))
    return value if value is not None and value >= 500 else None


@functools.lru_cache(maxsize=4096)
def read_claims(text: str) -> Claims:
    """Read the claims and the customer's own figures in a complaint (zh-CN or English).

    Cached: investigating a complaint reads its text twice (the simulated records, the
    assessment), and ``Claims`` is immutable."""
    lowered = folded(text)
    if re.search(r"[\u4e00-\u9fff]", text):
        codes = tuple(code for code, pattern in _ZH.items() if pattern.search(text))
    else:
        codes = tuple(code for code, caseless in _EN.items() if caseless.search(text, lowered))
    per_day = None
    match = re.search(rf"(一天|每天|每日|一日|一上午|一下午)[^。，,；;]{{0,8}}?{_COUNT}[多余]?[个次通遍]", text)
    if match:
        per_day = zh_number(match.group(2))
    else:
        match = _PER_DAY_EN.search(text, lowered)
        if match:
            per_day = int(match.group(1))
    if per_day is not None and not 1 <= per_day <= 500:
        per_day = None
    apr = None
    match = _APR.search(text, lowered)
    if match:
        apr = Decimal(match.group(2)) / 100
    term = None
    match = re.search(r"(\d{1,2})\s*(期|个月|months)", text)
    if match and 1 <= int(match.group(1)) <= 60:
        term = int(match.group(1))
    days_late = None
    match = re.search(r"逾期(了)?\s*(\d{1,3})\s*天|(\d{1,3})\s+days? (late|past due)", text)
    if match:
        days_late = int(match.group(2) or match.group(3))
    fee_kinds = tuple(kind for kind, caseless in _FEE_KINDS.items() if caseless.search(text, lowered))
    hardship = bool(_HARDSHIP.search(text, lowered))
    return Claims(
        codes=codes,
        contacts_per_day=per_day,
        claimed_apr=apr if apr is not None and Decimal("0.01") <= apr <= Decimal("5") else None,
        principal=_amount_after("借款|贷款|借了|本金|额度|loan of|borrowed", text),
        received=_amount_after("到手|实际到账|实际拿到|实际放款|到账", text),
        term=term,
        monthly_payment=_amount_after("每月还款金额|每月还款|每期还款|每月还|每个月还款|每个月还|monthly payment", text),
        days_late=days_late,
        fee_kinds=fee_kinds,
        hardship=hardship,
    )
