from django.core.paginator import Paginator
from django.shortcuts import render

from .localities import locality_search
from .models import Level


def locality_list(request):
    """Public page: find a province or commune of the 2025 scheme by name."""
    query = request.GET.get("q", "").strip()
    level = request.GET.get("level", "")
    qs = locality_search(query=query, level=level if level in Level.values else None)
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    return render(request, "beneficiaries/locality_list.html", {"page": page, "query": query, "level": level})
