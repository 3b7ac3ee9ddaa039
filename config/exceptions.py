"""One error family for domain rules, turned into one clear 4xx body by the API."""

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler


class ApplicationError(Exception):
    """A rule of the domain was broken: the message says which, `extra` says where."""

    status_code = 400

    def __init__(self, message: str, *, extra: dict | None = None, code: str = "invalid"):
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
        self.code = code


class ConflictError(ApplicationError):
    """The object is not in a state that allows this (e.g. approving a rejected member)."""

    status_code = 409


def api_exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = drf_exceptions.ValidationError(as_serializer_error(exc))
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    if isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if isinstance(exc, ApplicationError):
        from rest_framework.response import Response

        # A service's "you may not" (code "forbidden") is a 403, like the permission classes'.
        status = 403 if exc.code == "forbidden" else exc.status_code
        return Response({"message": exc.message, "code": exc.code, "extra": exc.extra}, status=status)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        response.data = {"message": "Validation error", "code": "invalid", "extra": {"fields": response.data}}
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else response.data
        response.data = {"message": str(detail), "code": getattr(detail, "code", "error"), "extra": {}}
    return response
