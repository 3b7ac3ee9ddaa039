from drf_spectacular.openapi import AutoSchema as BaseAutoSchema


class AutoSchema(BaseAutoSchema):
    """Name nested serializers after their view: the house style nests `InputSerializer` and
    `OutputSerializer` in every API class, and bare class names would collide in the schema."""

    def get_serializer_name(self, serializer, direction):
        cls = serializer if isinstance(serializer, type) else type(serializer)
        outer, _, inner = cls.__qualname__.rpartition(".")
        if outer and "<locals>" not in outer:
            return outer.replace(".", "").removesuffix("Api") + inner
        return super().get_serializer_name(serializer, direction)
