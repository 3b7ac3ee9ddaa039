"""Every API endpoint lives under /api/; each app adds its own module here."""

from django.urls import include, path

urlpatterns = [
    path("accounts/", include("donors.api_urls")),
    path("localities/", include("beneficiaries.api_urls")),
    path("registry/", include("beneficiaries.registry_api_urls")),
    path("matching/", include("sponsorship.matching.api_urls")),
]

urlpatterns += [path("", include("sponsorship.api_urls"))]
urlpatterns += [path("enrollment/", include("sponsorship.enrollment.api_urls"))]  # enrollment (issue 6)
