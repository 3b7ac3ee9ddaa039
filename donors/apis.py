from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView


class MeApi(APIView):
    class ScopeSerializer(serializers.Serializer):
        scheme = serializers.CharField(source="locality.scheme")
        level = serializers.CharField(source="locality.level")
        code = serializers.IntegerField(source="locality.code")
        name = serializers.CharField(source="locality.name")

        class Meta:
            ref_name = "MeScope"

    class OutputSerializer(serializers.Serializer):
        email = serializers.EmailField()
        full_name = serializers.CharField()
        role = serializers.CharField()
        scopes = serializers.SerializerMethodField()

        class Meta:
            ref_name = "Me"  # nested OutputSerializers must have unique schema names

        def get_scopes(self, user) -> list[dict]:
            scopes = user.scopes.select_related("locality")
            return MeApi.ScopeSerializer(scopes, many=True).data

    @extend_schema(responses=OutputSerializer)
    def get(self, request):
        return Response(self.OutputSerializer(request.user).data)
