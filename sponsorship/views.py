from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .health import health_report


@require_GET
def home(request):
    return render(request, "sponsorship/home.html")


@never_cache
@require_GET
def healthz(request):
    """JSON for load balancers and people: 200 when every dependency answers, else 503 naming it."""
    report = health_report()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503, json_dumps_params={"indent": 2})
