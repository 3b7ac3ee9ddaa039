"""Registry API: one view per operation, nested Input/Output serializers, scoped selectors.

Out-of-scope objects are 404s. Personal data is masked unless the user's scope covers the
household's locality; every unmasked detail response is logged as a PersonalDataView.
"""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import (
    ImportJob,
    Locality,
    Member,
    MemberStatus,
    PovertyClass,
    Product,
    Relation,
    Sex,
)
from .pricing import price_household, price_member
from .selectors import (
    household_get,
    import_job_get,
    mask,
    may_see_personal_data,
    member_get,
    member_history,
    member_list,
    personal_data_view_log,
)
from .services import review
from .services.imports import import_errors_csv, import_job_create
from .services.registry import MemberInput, household_create
from .tasks import import_job_run


class PriceOutputSerializer(serializers.Serializer):
    product = serializers.CharField()
    months = serializers.IntegerField()
    on_date = serializers.DateField()
    eligible = serializers.BooleanField()
    reason = serializers.CharField()
    reason_text = serializers.CharField()
    group = serializers.CharField()
    premium_vnd = serializers.IntegerField()
    state_share_vnd = serializers.IntegerField()
    province_share_vnd = serializers.IntegerField()
    donor_share_vnd = serializers.IntegerField()
    ladder_position = serializers.IntegerField(allow_null=True)
    schedule_id = serializers.IntegerField(allow_null=True)
    rule_ids = serializers.ListField(child=serializers.IntegerField())


class MemberOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    household_id = serializers.IntegerField()
    locality_id = serializers.IntegerField()
    full_name = serializers.CharField()
    sex = serializers.CharField()
    relation = serializers.CharField()
    is_student = serializers.BooleanField()
    status = serializers.CharField()
    is_possible_duplicate = serializers.BooleanField()
    card_group = serializers.CharField()
    card_valid_until = serializers.DateField(allow_null=True)
    personal_data_masked = serializers.BooleanField()
    personal_id = serializers.CharField()
    date_of_birth = serializers.CharField()


def _member_out(member: Member, unmasked: bool) -> dict:
    return {
        "id": member.pk,
        "household_id": member.household_id,
        "locality_id": member.locality_id,
        "full_name": member.full_name,
        "sex": member.sex,
        "relation": member.relation,
        "is_student": member.is_student,
        "status": member.status,
        "is_possible_duplicate": member.is_possible_duplicate,
        "card_group": member.card_group,
        "card_valid_until": member.card_valid_until,
        "personal_data_masked": not unmasked,
        "personal_id": member.personal_id if unmasked else mask(member.personal_id),
        "date_of_birth": member.date_of_birth.isoformat() if unmasked else "••••-••-••",
    }


class MemberListApi(APIView):
    class FilterSerializer(serializers.Serializer):
        # Bounded to PostgreSQL's bigint: a larger number was a 500 (DataError), found by schemathesis.
        locality = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
        province = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
        status = serializers.ChoiceField(choices=MemberStatus.choices, required=False)
        poverty_class = serializers.ChoiceField(choices=PovertyClass.choices, required=False)
        is_possible_duplicate = serializers.BooleanField(required=False, allow_null=True, default=None)
        is_poor_commune = serializers.BooleanField(required=False, default=False)
        is_ethnic_minority = serializers.BooleanField(required=False, default=False)
        is_island_commune = serializers.BooleanField(required=False, default=False)
        q = serializers.CharField(required=False, allow_blank=True)
        limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=50)
        offset = serializers.IntegerField(required=False, min_value=0, max_value=2**63 - 1, default=0)

    class OutputSerializer(serializers.Serializer):
        count = serializers.IntegerField()
        results = MemberOutputSerializer(many=True)

    @extend_schema(parameters=[FilterSerializer], responses=OutputSerializer, operation_id="registry_members_list")
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        qs = member_list(user=request.user, filters=data)
        page = list(qs[data["offset"] : data["offset"] + data["limit"]])
        # Lists are always masked: unmasking is per record, on the detail, and logged.
        return Response({"count": qs.count(), "results": [_member_out(m, False) for m in page]})


class MemberDetailApi(APIView):
    class OutputSerializer(MemberOutputSerializer):
        address = serializers.CharField()
        history = inline_serializer(
            "MemberTransitionOutput",
            fields={
                "at": serializers.DateTimeField(),
                "actor": serializers.CharField(allow_null=True),
                "from_status": serializers.CharField(),
                "to_status": serializers.CharField(),
                "reason": serializers.CharField(),
            },
            many=True,
        )

    @extend_schema(responses=OutputSerializer)
    def get(self, request, pk: int):
        member = member_get(user=request.user, pk=pk)
        unmasked = may_see_personal_data(user=request.user, household=member.household)
        if unmasked:
            personal_data_view_log(user=request.user, household=member.household, member=member, channel="api")
        out = _member_out(member, unmasked)
        out["address"] = member.household.address if unmasked else mask(member.household.address)
        out["history"] = [
            {
                "at": t.at,
                "actor": str(t.actor) if t.actor else None,
                "from_status": t.from_status,
                "to_status": t.to_status,
                "reason": t.reason,
            }
            for t in member_history(member=member)
        ]
        return Response(self.OutputSerializer(out).data)


class MemberPriceApi(APIView):
    class FilterSerializer(serializers.Serializer):
        product = serializers.ChoiceField(choices=Product.choices, default=Product.HI_HOUSEHOLD)
        months = serializers.IntegerField(default=12, min_value=1, max_value=120)
        on_date = serializers.DateField(required=False)
        income_vnd = serializers.IntegerField(required=False, min_value=0)

    @extend_schema(parameters=[FilterSerializer], responses=PriceOutputSerializer)
    def get(self, request, pk: int):
        member = member_get(user=request.user, pk=pk)
        f = self.FilterSerializer(data=request.query_params)
        f.is_valid(raise_exception=True)
        d = f.validated_data
        price = price_member(
            member=member,
            product=d["product"],
            months=d["months"],
            on_date=d.get("on_date") or timezone.localdate(),
            income_vnd=d.get("income_vnd"),
        )
        return Response(PriceOutputSerializer(price).data)


class _TransitionApi(APIView):
    """POST moves one member; running it twice is a no-op (200 with the same status)."""

    needs_reason = False

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, default="")

    def service(self, *, user, member, reason):  # pragma: no cover - overridden
        raise NotImplementedError

    @extend_schema(request=InputSerializer, responses=MemberOutputSerializer)
    def post(self, request, pk: int):
        member = member_get(user=request.user, pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        member = self.service(user=request.user, member=member, reason=data.validated_data["reason"])
        unmasked = may_see_personal_data(user=request.user, household=member.household)
        return Response(MemberOutputSerializer(_member_out(member, unmasked)).data)


class MemberSubmitApi(_TransitionApi):
    def service(self, *, user, member, reason):
        return review.member_submit(user=user, member=member)


class MemberApproveApi(_TransitionApi):
    def service(self, *, user, member, reason):
        return review.member_approve(user=user, member=member)


class MemberRejectApi(_TransitionApi):
    def service(self, *, user, member, reason):
        return review.member_reject(user=user, member=member, reason=reason)


class MemberReturnApi(_TransitionApi):
    def service(self, *, user, member, reason):
        return review.member_return(user=user, member=member, reason=reason)


class MemberSuspendApi(_TransitionApi):
    def service(self, *, user, member, reason):
        return review.member_suspend(user=user, member=member, reason=reason)


class MemberBulkApproveApi(APIView):
    class InputSerializer(serializers.Serializer):
        ids = serializers.ListField(child=serializers.IntegerField(), min_length=1, max_length=10_000)

    class OutputSerializer(serializers.Serializer):
        approved = serializers.IntegerField()
        skipped = serializers.IntegerField()

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        members = list(member_list(user=request.user).filter(pk__in=data.validated_data["ids"]))
        result = review.members_bulk_approve(user=request.user, members=members)
        result["skipped"] += len(set(data.validated_data["ids"])) - len(members)
        return Response(self.OutputSerializer(result).data)


class MemberInputSerializer(serializers.Serializer):
    full_name = serializers.CharField(max_length=200)
    date_of_birth = serializers.DateField()
    sex = serializers.ChoiceField(choices=Sex.choices)
    personal_id = serializers.CharField(max_length=12)
    relation = serializers.ChoiceField(choices=Relation.choices)
    si_code = serializers.CharField(required=False, allow_blank=True, default="")
    ethnicity = serializers.CharField(required=False, allow_blank=True, default="")
    is_student = serializers.BooleanField(required=False, default=False)
    card_group = serializers.CharField(required=False, allow_blank=True, default="", max_length=4)
    card_valid_until = serializers.DateField(required=False, allow_null=True, default=None)


class HouseholdCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        locality = serializers.IntegerField(help_text="Id of a commune of the 2025 scheme")
        external_ref = serializers.CharField(max_length=40)
        address = serializers.CharField(required=False, allow_blank=True, default="")
        phone = serializers.CharField(required=False, allow_blank=True, default="", max_length=20)
        poverty_class = serializers.ChoiceField(choices=PovertyClass.choices, default=PovertyClass.NONE)
        certificate_number = serializers.CharField(required=False, allow_blank=True, default="")
        certificate_year = serializers.IntegerField(required=False, allow_null=True, default=None)
        is_poor_commune = serializers.BooleanField(required=False, default=False)
        is_ethnic_minority = serializers.BooleanField(required=False, default=False)
        is_island_commune = serializers.BooleanField(required=False, default=False)
        members = MemberInputSerializer(many=True)

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        member_ids = serializers.ListField(child=serializers.IntegerField())

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = dict(data.validated_data)
        locality = get_object_or_404(Locality, pk=d.pop("locality"))
        members = [MemberInput(**m) for m in d.pop("members")]
        household = household_create(user=request.user, locality=locality, members=members, **d)
        out = {"id": household.pk, "member_ids": list(household.members.order_by("id").values_list("id", flat=True))}
        return Response(self.OutputSerializer(out).data, status=status.HTTP_201_CREATED)


class HouseholdDetailApi(APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        locality_id = serializers.IntegerField()
        external_ref = serializers.CharField()
        address = serializers.CharField()
        phone = serializers.CharField()
        poverty_class = serializers.CharField()
        certificate_number = serializers.CharField()
        certificate_year = serializers.IntegerField(allow_null=True)
        is_poor_commune = serializers.BooleanField()
        is_ethnic_minority = serializers.BooleanField()
        is_island_commune = serializers.BooleanField()
        personal_data_masked = serializers.BooleanField()
        donor_total_12_months_vnd = serializers.IntegerField()
        members = inline_serializer(
            "HouseholdMemberOutput",
            fields={"member": MemberOutputSerializer(), "price": PriceOutputSerializer()},
            many=True,
        )

    @extend_schema(responses=OutputSerializer)
    def get(self, request, pk: int):
        household = household_get(user=request.user, pk=pk)
        unmasked = may_see_personal_data(user=request.user, household=household)
        if unmasked:
            personal_data_view_log(user=request.user, household=household, channel="api")
        prices = price_household(household=household, months=12, on_date=timezone.localdate())
        out = {
            "id": household.pk,
            "locality_id": household.locality_id,
            "external_ref": household.external_ref,
            "address": household.address if unmasked else mask(household.address),
            "phone": household.phone if unmasked else mask(household.phone),
            "poverty_class": household.poverty_class,
            "certificate_number": household.certificate_number,
            "certificate_year": household.certificate_year,
            "is_poor_commune": household.is_poor_commune,
            "is_ethnic_minority": household.is_ethnic_minority,
            "is_island_commune": household.is_island_commune,
            "personal_data_masked": not unmasked,
            "donor_total_12_months_vnd": prices.donor_share_vnd,
            "members": [{"member": _member_out(m, unmasked), "price": p} for m, p in prices.lines],
        }
        return Response(self.OutputSerializer(out).data)


class _FreezeBase(APIView):
    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, default="")

    class OutputSerializer(serializers.Serializer):
        locality_id = serializers.IntegerField()
        frozen = serializers.BooleanField()


class LocalityFreezeApi(_FreezeBase):
    @extend_schema(request=_FreezeBase.InputSerializer, responses=_FreezeBase.OutputSerializer)
    def post(self, request, pk: int):
        locality = get_object_or_404(Locality, pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        review.locality_freeze(user=request.user, locality=locality, reason=data.validated_data["reason"])
        return Response({"locality_id": locality.pk, "frozen": True})


class LocalityUnfreezeApi(_FreezeBase):
    @extend_schema(request=None, responses=_FreezeBase.OutputSerializer)
    def post(self, request, pk: int):
        locality = get_object_or_404(Locality, pk=pk)
        review.locality_unfreeze(user=request.user, locality=locality)
        return Response({"locality_id": locality.pk, "frozen": False})


class ImportJobOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImportJob
        fields = [
            "id",
            "original_name",
            "status",
            "rows_total",
            "rows_done",
            "rows_created",
            "rows_unchanged",
            "rows_failed",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]


class ImportCreateApi(APIView):
    parser_classes = [MultiPartParser]

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField()

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses={202: ImportJobOutputSerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = import_job_create(user=request.user, uploaded=data.validated_data["file"])
        import_job_run.delay_on_commit(job.pk)
        return Response(ImportJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ImportDetailApi(APIView):
    @extend_schema(responses=ImportJobOutputSerializer)
    def get(self, request, pk: int):
        return Response(ImportJobOutputSerializer(import_job_get(user=request.user, pk=pk)).data)


class ImportErrorsApi(APIView):
    @extend_schema(
        responses={(200, "text/csv"): OpenApiTypes.STR}, parameters=[OpenApiParameter("format", exclude=True)]
    )
    def get(self, request, pk: int):
        job = import_job_get(user=request.user, pk=pk)
        response = HttpResponse(import_errors_csv(job=job), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
        return response


def _name_components() -> None:
    """Give each nested serializer a unique schema component name (<View><Input|Output|Filter>)."""
    from drf_spectacular.utils import extend_schema_serializer

    for view in list(globals().values()):
        if not (isinstance(view, type) and issubclass(view, APIView) and view.__module__ == __name__):
            continue
        for attr in ("InputSerializer", "OutputSerializer", "FilterSerializer"):
            serializer = view.__dict__.get(attr)
            if serializer is not None:
                name = view.__name__.removesuffix("Api").lstrip("_") + attr.removesuffix("Serializer")
                extend_schema_serializer(component_name=f"Registry{name}")(serializer)


_name_components()


# --- Access control (issue 8) -------------------------------------------------------------------
# The scoped selectors already hide other localities' records; these make the whole registry API
# a staff surface (donors and the public get 403 rather than empty lists), and keep bulk
# approval to the roles that decide. The access matrix (tests/hardening) pins every cell.
from rest_framework.permissions import IsAuthenticated  # noqa: E402

from donors.models import Role  # noqa: E402

REGISTRY_STAFF_ROLES = {Role.COMMUNE_OFFICER, Role.FRONT_REVIEWER, Role.AGENCY_VIEWER, Role.FINANCE, Role.ADMIN}


class IsRegistryStaff(IsAuthenticated):
    def has_permission(self, request, view):
        user = request.user
        return super().has_permission(request, view) and (user.is_superuser or user.role in REGISTRY_STAFF_ROLES)


class IsReviewer(IsAuthenticated):
    def has_permission(self, request, view):
        user = request.user
        return super().has_permission(request, view) and (user.is_superuser or user.role in review.REVIEW_ROLES)


for _view in (
    MemberListApi,
    MemberDetailApi,
    MemberPriceApi,
    MemberSubmitApi,
    MemberApproveApi,
    MemberRejectApi,
    MemberReturnApi,
    MemberSuspendApi,
    HouseholdCreateApi,
    HouseholdDetailApi,
    LocalityFreezeApi,
    LocalityUnfreezeApi,
    ImportCreateApi,
    ImportDetailApi,
    ImportErrorsApi,
):
    _view.permission_classes = [IsRegistryStaff]
MemberBulkApproveApi.permission_classes = [IsReviewer]
