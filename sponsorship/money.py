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


def format_count(number: int | None, language: str | None = None) -> str:
    """A count grouped like amounts: 1.234.567 in Vietnamese, 1,234,567 in English."""
    if number is None:
        return ""
    language = (language or translation.get_language() or "vi")[:2]
    grouped = f"{int(number):,}"
    return grouped.replace(",", ".") if language == "vi" else grouped
