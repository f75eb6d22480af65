"""Log lines carry case context and never personal numbers."""

from __future__ import annotations

import io
import json
import logging

from shared.logging import ContextFilter, JsonFormatter, log_context, redact


def test_redact_masks_phone_id_and_card_numbers() -> None:
    text = "客户13812345678，身份证110101199003071234，卡号6222021234567890123，金额 1200 元"
    out = redact(text)
    assert "13812345678" not in out and "138****5678" in out
    assert "110101199003071234" not in out and "1101**********1234" in out
    assert "6222021234567890123" not in out and "6222********0123" in out
    assert "1200" in out


def test_redact_leaves_ordinary_numbers_alone() -> None:
    assert redact("TS-20261129-000123 逾期 35 天, 2026-11-29") == "TS-20261129-000123 逾期 35 天, 2026-11-29"


def test_records_carry_case_context_and_are_redacted() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.parley.logging")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        with log_context(case_id="case-9", correlation_id="corr-1"):
            logger.info("called back %s", "13912345678")
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["case_id"] == "case-9" and first["correlation_id"] == "corr-1"
    assert first["message"] == "called back 139****5678"
    assert second["case_id"] == "-"
