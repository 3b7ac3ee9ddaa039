"""Matching API: runs and a card's allocations (nationwide staff), the donor's funded cards."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from ..apis import IsFinance
from . import selectors


class MatchingRunListApi(APIView):
    permission_classes = [IsFinance]

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        province_id = serializers.IntegerField(allow_null=True)
        status = serializers.CharField()
        started_at = serializers.DateTimeField()
        duration_ms = serializers.IntegerField()
        money_in_vnd = serializers.IntegerField()
        money_allocated_vnd = serializers.IntegerField()
        money_left_vnd = serializers.IntegerField()
        needs = serializers.IntegerField()
        cards_funded = serializers.IntegerField()
        allocations = serializers.IntegerField()
        capped = serializers.BooleanField()
        # The lowest household score unrestricted money reached in the run (null: no cutoff).
        unrestricted_cutoff = serializers.DecimalField(max_digits=14, decimal_places=1, allow_null=True)
        error = serializers.CharField()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        return Response(self.OutputSerializer(selectors.runs_list(), many=True).data)


class CardAllocationListApi(APIView):
    permission_classes = [IsFinance]

    class OutputSerializer(serializers.Serializer):
        donation_reference = serializers.CharField(source="donation.reference")
        amount_vnd = serializers.IntegerField()
        fund = serializers.CharField()
        score = serializers.DecimalField(max_digits=14, decimal_places=3)
        rule_version = serializers.IntegerField()
        components = serializers.JSONField()
        run_id = serializers.IntegerField()
        created_at = serializers.DateTimeField()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request, card_id):
        return Response(self.OutputSerializer(selectors.card_allocations(card_id=card_id), many=True).data)


class DonorCardListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        card_id = serializers.IntegerField()
        commune = serializers.CharField(source="card__locality__name")
        group = serializers.CharField(source="card__group")
        months = serializers.IntegerField(source="card__months")
        period_start = serializers.DateField(source="card__period_start")
        status = serializers.CharField(source="card__status")
        amount_vnd = serializers.IntegerField()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        return Response(self.OutputSerializer(selectors.donor_cards(donor=request.user), many=True).data)


class HoldCreateApi(APIView):
    """A donor holds one household (or a commune) for one of their pledges while it clears."""

    class InputSerializer(serializers.Serializer):
        donation = serializers.UUIDField(help_text="The pledge's public id.")
        household_id = serializers.IntegerField(required=False, allow_null=True)
        locality_id = serializers.IntegerField(required=False, allow_null=True)

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        household_id = serializers.IntegerField(allow_null=True)
        locality_id = serializers.IntegerField(allow_null=True)
        amount_vnd = serializers.IntegerField()
        status = serializers.CharField()
        expires_at = serializers.DateTimeField()

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request):
        from django.shortcuts import get_object_or_404

        from beneficiaries.models import Household, Locality

        from ..models import Donation
        from . import holds

        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        donation = get_object_or_404(Donation, public_id=v["donation"], donor=request.user)
        household = get_object_or_404(Household, pk=v["household_id"]) if v.get("household_id") else None
        locality = get_object_or_404(Locality, pk=v["locality_id"]) if v.get("locality_id") else None
        hold = holds.hold_create(donation=donation, household=household, locality=locality, by=request.user)
        return Response(self.OutputSerializer(hold).data, status=201)
