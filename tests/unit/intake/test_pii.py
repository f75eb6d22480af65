"""Masking of personal data: the shapes the issue asks for, and numbers inside free text."""

from __future__ import annotations

from services.intake import pii


def test_phone_and_id_number_shapes() -> None:
    assert pii.mask_phone("13812345678") == "138****5678"
    assert pii.mask_phone("+86 138-1234-5678") == "138****5678"
    assert pii.mask_phone("010-88886666") == "*******6666"
    assert pii.mask_id_number("110101199003071234") == "1101**********1234"
    assert pii.mask_id_number("11010119900307123X") == "1101**********123X"
    assert pii.mask_phone(None) == "" and pii.mask_id_number("") == ""


def test_names_and_cards() -> None:
    assert pii.mask_name("张三") == "张*"
    assert pii.mask_name("欧阳小明") == "欧***"
    assert pii.mask_name("Jane Doe") == "J*** D**"
    assert pii.mask_card("6222 0212 3456 7890") == "************7890"


def test_free_text_numbers_are_masked_and_others_kept() -> None:
    text = (
        "我叫王五，手机 138 1234 5678，身份证 11010119900307123X，"
        "卡号6222-0212-3456-7890-123，邮箱 wangwu@example.com，"
        "欠款 12345.67 元，2023年5月12日，订单 20230512"
    )
    masked = pii.mask_text(text)
    for secret in ("1381234", "11010119900307", "62220212345678", "wangwu@"):
        assert secret not in masked.replace(" ", "").replace("-", "")
    assert "138****5678" in masked and "1101**********123X" in masked
    assert "12345.67" in masked and "20230512" in masked and "w***@example.com" in masked


def test_english_text_with_phone() -> None:
    assert pii.mask_text("call me at +86 13912345678 please") == "call me at 139****5678 please"


def test_mask_text_masks_the_customers_own_name_where_the_text_names_them() -> None:
    text = "我是欧阳二峰，我丈夫张三替我还款。John Smith called John Smith's manager."
    masked = pii.mask_text(text, names=["欧阳二峰", "John Smith", None, "张"])
    assert "欧阳二峰" not in masked and "欧***" in masked
    assert "John Smith" not in masked and "J*** S****'s" in masked
    assert "张三" in masked  # a one-character "name" is not searched for; other names are not known
