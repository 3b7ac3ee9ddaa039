"""Donation, payment, refund, bank and finance APIs. One view per operation."""

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from beneficiaries.models import Locality
from donors.scopes import is_nationwide

from .models import (
    Appearance,
    BankStatementLine,
    Discrepancy,
    Donation,
    LedgerAlarm,
    LineStatus,
    Method,
    Product,
)
from .services import bank, ledger, payments
from .services.donations import donation_create


class IsFinance(permissions.BasePermission):
    def has_permission(self, request, view):
        return is_nationwide(request.user)


def own_donation(request, public_id) -> Donation:
    """A donor sees only their own gifts (finance sees all); others get 404, not 403."""
    qs = Donation.objects.all() if is_nationwide(request.user) else Donation.objects.filter(donor=request.user)
    return get_object_or_404(qs, public_id=public_id)


class DonationOutputSerializer(serializers.Serializer):
    public_id = serializers.UUIDField()
    reference = serializers.CharField()
    method = serializers.CharField()
    status = serializers.CharField()
    amount_vnd = serializers.IntegerField()
    cards_count = serializers.IntegerField(allow_null=True)
    amount_received_vnd = serializers.IntegerField()
    amount_refunded_vnd = serializers.IntegerField()
    appearance = serializers.CharField()
    product = serializers.CharField()
    beneficiary_group = serializers.CharField()
    campaign = serializers.CharField()
    locality_id = serializers.IntegerField(allow_null=True)
    failure_message = serializers.CharField()
    created_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField(allow_null=True)


class DonationCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        method = serializers.ChoiceField(choices=Method.choices)
        amount_vnd = serializers.IntegerField(required=False, min_value=1)
        cards_count = serializers.IntegerField(required=False, min_value=1, max_value=10_000)
        locality_id = serializers.IntegerField(required=False, allow_null=True)
        product = serializers.ChoiceField(choices=Product.choices, required=False, allow_blank=True, default="")
        beneficiary_group = serializers.CharField(required=False, allow_blank=True, default="", max_length=16)
        campaign = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)
        appearance = serializers.ChoiceField(choices=Appearance.choices, default=Appearance.NAMED)
        # Money left unmatched may go "where most needed" (matching/expiry.py).
        has_redirect_consent = serializers.BooleanField(required=False, default=False)

    class OutputSerializer(DonationOutputSerializer):
        vietqr_payload = serializers.CharField(required=False)
        vietqr_image = serializers.CharField(required=False)

    @extend_schema(
        request=InputSerializer,
        responses={201: OutputSerializer, 200: OutputSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = dict(data.validated_data)
        locality_id = v.pop("locality_id", None)
        locality = get_object_or_404(Locality, pk=locality_id) if locality_id else None
        donation, created = donation_create(
            donor=request.user,
            locality=locality,
            idempotency_key=request.headers.get("Idempotency-Key", "")[:100],
            **v,
        )
        out = self.OutputSerializer(donation).data
        if donation.method == Method.BANK:
            payload = bank.vietqr_payload(donation)
            out["vietqr_payload"] = payload
            out["vietqr_image"] = bank.vietqr_svg_data_uri(payload)
        return Response(out, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class DonationListApi(APIView):
    @extend_schema(responses=DonationOutputSerializer(many=True))
    def get(self, request):
        qs = Donation.objects.filter(donor=request.user).order_by("-created_at")[:200]
        return Response(DonationOutputSerializer(qs, many=True).data)


class DonationDetailApi(APIView):
    @extend_schema(responses=DonationOutputSerializer)
    def get(self, request, public_id):
        return Response(DonationOutputSerializer(own_donation(request, public_id)).data)


class CardSetupApi(APIView):
    class OutputSerializer(serializers.Serializer):
        client_secret = serializers.CharField()
        publishable_key = serializers.CharField()

    @extend_schema(request=None, responses=OutputSerializer)
    def post(self, request, public_id):
        donation = own_donation(request, public_id)
        secret = payments.card_setup_start(donation)
        return Response({"client_secret": secret, "publishable_key": settings.STRIPE_PUBLISHABLE_KEY})


class CardPayApi(APIView):
    class InputSerializer(serializers.Serializer):
        payment_method = serializers.CharField(max_length=80)

    class OutputSerializer(serializers.Serializer):
        status = serializers.CharField()
        client_secret = serializers.CharField(required=False)
        message = serializers.CharField(required=False)

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request, public_id):
        donation = own_donation(request, public_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = payments.card_pay(donation, data.validated_data["payment_method"])
        return Response(self.OutputSerializer(result).data)


class RefundCreateApi(APIView):
    permission_classes = [IsFinance]

    class InputSerializer(serializers.Serializer):
        amount_vnd = serializers.IntegerField(required=False, min_value=1)

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        amount_vnd = serializers.IntegerField()
        status = serializers.CharField()
        stripe_refund_id = serializers.CharField(allow_null=True)

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request, public_id):
        donation = own_donation(request, public_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        refund = payments.refund_request(
            donation=donation, amount_vnd=data.validated_data.get("amount_vnd"), by=request.user
        )
        return Response(self.OutputSerializer(refund).data, status=status.HTTP_201_CREATED)


class LedgerSummaryApi(APIView):
    permission_classes = [IsFinance]

    class OutputSerializer(serializers.Serializer):
        trial_balance = serializers.DictField(child=serializers.IntegerField())
        donor_funds = serializers.DictField(child=serializers.IntegerField())
        open_alarms = serializers.ListField(child=serializers.CharField())
        discrepancies = serializers.ListField(child=serializers.DictField())

    @extend_schema(responses=OutputSerializer)
    def get(self, request):
        return Response(
            {
                "trial_balance": ledger.trial_balance(),
                "donor_funds": ledger.fund_balances(),
                "open_alarms": [str(a) for a in LedgerAlarm.objects.filter(resolved_at=None)[:100]],
                "discrepancies": list(
                    Discrepancy.objects.filter(resolved_at=None).values("kind", "stripe_object_id", "details")[:200]
                ),
            }
        )


class StatementUploadApi(APIView):
    permission_classes = [IsFinance]

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField()

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        lines_total = serializers.IntegerField()
        lines_new = serializers.IntegerField()

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses=OutputSerializer)
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        f = data.validated_data["file"]
        statement = bank.statement_import(name=f.name, content=f.read(), by=request.user)
        return Response(self.OutputSerializer(statement).data, status=status.HTTP_201_CREATED)


class BankLineListApi(APIView):
    permission_classes = [IsFinance]

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        booked_on = serializers.DateField()
        amount_vnd = serializers.IntegerField()
        description = serializers.CharField()
        bank_reference = serializers.CharField()
        status = serializers.CharField()
        match_note = serializers.CharField()

    @extend_schema(responses=OutputSerializer(many=True), parameters=[OpenApiParameter("status", str, required=False)])
    def get(self, request):
        qs = BankStatementLine.objects.filter(status=request.query_params.get("status", LineStatus.UNMATCHED))
        return Response(self.OutputSerializer(qs.order_by("id")[:500], many=True).data)


class BankLineMatchApi(APIView):
    permission_classes = [IsFinance]

    class InputSerializer(serializers.Serializer):
        reference = serializers.CharField(max_length=25)

    @extend_schema(request=InputSerializer, responses=BankLineListApi.OutputSerializer)
    def post(self, request, line_id):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        line = get_object_or_404(BankStatementLine, pk=line_id)
        line = bank.match_line_manually(line=line, reference=data.validated_data["reference"], by=request.user)
        return Response(BankLineListApi.OutputSerializer(line).data)
