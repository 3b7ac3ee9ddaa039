import datetime

from django.template import Context, Template
from django.utils import formats, translation

from sponsorship.money import format_vnd


def test_vnd_is_formatted_for_each_language():
    assert format_vnd(1263600, "vi") == "1.263.600 ₫"
    assert format_vnd(1263600, "en") == "₫1,263,600"
    assert format_vnd(0, "vi") == "0 ₫"
    assert format_vnd(-379080, "en") == "-₫379,080"


def test_vnd_filter_follows_the_active_language():
    template = Template("{% load money %}{{ amount|vnd }}")
    with translation.override("vi"):
        assert template.render(Context({"amount": 409860})) == "409.860 ₫"
    with translation.override("en"):
        assert template.render(Context({"amount": 409860})) == "₫409,860"


def test_vietnamese_dates_are_dd_mm_yyyy():
    with translation.override("vi"):
        assert formats.date_format(datetime.date(2026, 11, 29), "SHORT_DATE_FORMAT") == "29/11/2026"
        assert formats.date_format(datetime.date(2026, 11, 29)) == "29/11/2026"


def test_pages_switch_language_and_translate(client, db):
    vi = client.get("/", HTTP_ACCEPT_LANGUAGE="vi").content.decode()
    assert "Đăng nhập" in vi
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    en = client.get("/").content.decode()
    assert "Log in" in en and "Đăng nhập" not in en
