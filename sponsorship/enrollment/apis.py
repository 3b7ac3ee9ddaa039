from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from .selectors import dashboard_rows
from .views import _may_see_dashboard, dashboard_params


class MaySeeDashboard(permissions.BasePermission):
    def has_permission(self, request, view):
        return _may_see_dashboard(request.user)


class DashboardApi(APIView):
    """Province rows, or one province's communes (?province=id); ?year=&type=hi|si_voluntary."""

    permission_classes = [MaySeeDashboard]

    class OutputSerializer(serializers.Serializer):
        locality_id = serializers.IntegerField()
        name = serializers.CharField()
        target = serializers.IntegerField(allow_null=True)
        baseline = serializers.IntegerField(allow_null=True)
        new = serializers.IntegerField()
        renewals = serializers.IntegerField()
        gap = serializers.IntegerField(allow_null=True)
        percent = serializers.FloatField(allow_null=True)
        raised_vnd = serializers.IntegerField()
        pending_vnd = serializers.IntegerField()
        monthly = serializers.ListField(child=serializers.IntegerField())

    class ResponseSerializer(serializers.Serializer):
        year = serializers.IntegerField()
        type = serializers.CharField()
        rows = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        parameters=[
            OpenApiParameter("year", int),
            OpenApiParameter("type", str, enum=["hi", "si_voluntary"]),
            OpenApiParameter("province", int),
        ],
        responses=ResponseSerializer,
    )
    def get(self, request):
        year, type_, province = dashboard_params(request)
        rows = dashboard_rows(request.user, year=year, type=type_, province_id=province)
        return Response({"year": year, "type": type_, "rows": self.OutputSerializer(rows, many=True).data})
