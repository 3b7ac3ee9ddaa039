"""Money for people: VND is integer đồng; formatting happens only at the edge."""

from django.utils import translation


def format_vnd(amount: int | None, language: str | None = None) -> str:
    """1263600 → '1.263.600 ₫' in Vietnamese, '₫1,263,600' in English."""
    if amount is None:
        return ""
    amount = int(amount)
    language = (language or translation.get_language() or "vi")[:2]
    sign = "-" if amount < 0 else ""
    grouped = f"{abs(amount):,}"
    if language == "vi":
        return f"{sign}{grouped.replace(',', '.')} ₫"
    return f"{sign}₫{grouped}"
