"""The matching benchmark at a tiny size: it runs the real matcher on its set-based data, prints
the table and the JSON line, verifies its own result and leaves nothing behind."""

import io
import json

from django.core.management import call_command

from beneficiaries.models import Household
from sponsorship.card_models import Card
from sponsorship.models import Donation


def test_matching_benchmark_verifies_and_cleans_up(db):
    out = io.StringIO()
    call_command("benchmark", "matching", "--members", "600", "--gifts", "40", "--copy-rows", "2000", stdout=out)
    lines = out.getvalue().strip().splitlines()
    figures = json.loads(lines[-1])
    assert figures["benchmark"] == "matching" and figures["verified"] is True
    assert figures["allocations"] >= figures["cards_funded"] > 400  # ~90 % of the shares are paid
    assert figures["money_left_vnd"] == figures["money_in_vnd"] - figures["money_allocated_vnd"]
    assert any("ratio to COPY" in line for line in lines[:-1])
    assert not Household.objects.filter(external_ref__startswith="BENCHM-").exists()
    assert not Card.objects.exists() and not Donation.objects.exists()
    # The write floor wrote exactly the run's output again, into copies that are gone.
    assert figures["write_floor_rows"] == {
        "sponsorship_card": figures["cards_funded"],
        "sponsorship_allocation": figures["allocations"],
    }
    assert len(figures["write_floor_s_samples"]) == 3 and figures["seconds_at_goal"] > 0
    assert any("writing the cards + allocations alone" in line for line in lines[:-1])
