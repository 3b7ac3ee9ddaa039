import pytest
from django.core.exceptions import ValidationError

from donors.taxcode import normalize_tax_code


def test_a_business_tax_code_with_a_valid_check_digit_is_accepted():
    assert normalize_tax_code("0100109106", kind="business") == "0100109106"


def test_a_branch_tax_code_is_accepted_and_compacted():
    assert normalize_tax_code("0100109106-001", kind="business") == "0100109106001"


def test_a_business_tax_code_with_a_wrong_check_digit_is_refused():
    with pytest.raises(ValidationError, match="business tax code"):
        normalize_tax_code("0100109107", kind="business")


def test_an_individual_may_use_the_twelve_digit_personal_id():
    assert normalize_tax_code("042 095 012 345", kind="person") == "042095012345"


def test_a_business_may_not_use_a_personal_id():
    with pytest.raises(ValidationError):
        normalize_tax_code("042095012345", kind="business")


def test_a_personal_id_with_an_impossible_century_digit_is_refused():
    with pytest.raises(ValidationError, match="fourth digit"):
        normalize_tax_code("042995012345", kind="person")


def test_an_empty_tax_code_is_allowed():
    assert normalize_tax_code("  ", kind="person") == ""
