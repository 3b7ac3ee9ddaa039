from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny

from .localities import locality_search
from .models import Level, Locality, Scheme


class LocalitySearchApi(ListAPIView):
    """Public: locality names and codes are not personal data."""

    permission_classes = [AllowAny]

    @extend_schema_serializer(component_name="LocalitySearchOutput")
    class OutputSerializer(serializers.ModelSerializer):
        province_code = serializers.IntegerField(source="province.code", allow_null=True)
        province_name = serializers.CharField(source="province.name", allow_null=True)

        class Meta:
            model = Locality
            fields = ["id", "scheme", "level", "code", "name", "division_type", "province_code", "province_name"]
            ref_name = "Locality"

    serializer_class = OutputSerializer

    class FilterSerializer(serializers.Serializer):
        q = serializers.CharField(required=False, allow_blank=True, default="")
        scheme = serializers.ChoiceField(choices=Scheme.choices, required=False, default=Scheme.CURRENT)
        level = serializers.ChoiceField(choices=Level.choices, required=False, allow_blank=True, default="")

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="Name, with or without diacritics"),
            OpenApiParameter("scheme", str, enum=Scheme.values),
            OpenApiParameter("level", str, enum=Level.values),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = self.FilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        return locality_search(query=data["q"], scheme=data["scheme"], level=data["level"] or None)
