import pytest

from donors.models import DonorKind, DonorProfile, Role, User


@pytest.fixture
def donor_an(db):
    user = User.objects.create_user("an@example.vn", "pw-an-123456", full_name="Nguyễn Văn An", role=Role.DONOR)
    DonorProfile.objects.create(user=user, kind=DonorKind.PERSON)
    return user


@pytest.fixture
def donor_binh(db):
    user = User.objects.create_user("binh@example.vn", "pw-binh-123456", full_name="Trần Thị Bình", role=Role.DONOR)
    DonorProfile.objects.create(user=user, kind=DonorKind.PERSON)
    return user


@pytest.fixture(autouse=True)
def english_messages():
    """Services speak the active language; tests read the English source strings."""
    from django.utils import translation

    with translation.override("en"):
        yield
