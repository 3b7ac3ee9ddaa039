from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.i18n import set_language
from drf_spectacular.views import SpectacularAPIView

from config.ratelimit import login_view
from sponsorship import views as sponsorship_views

urlpatterns = [
    path("", sponsorship_views.home, name="home"),
    path("healthz", sponsorship_views.healthz, name="healthz"),
    path("i18n/setlang/", set_language, name="set_language"),
    path("accounts/login/", login_view(), name="login"),  # lockout + rate limit (issue 8)
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("donors.urls")),
    path("localities/", include("beneficiaries.urls")),
    path("registry/", include("beneficiaries.registry_urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/", include("config.api_urls")),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

# Donations (issue 4)
from sponsorship.webhooks import stripe_webhook  # noqa: E402

urlpatterns += [
    path("stripe/webhook/", stripe_webhook, name="stripe-webhook"),
    path("donate/", include("sponsorship.urls")),
    path("donor/", include("donors.donor_urls")),
    path("finance/", include("sponsorship.finance_urls")),
    path("matching/", include("sponsorship.matching.urls")),
]
urlpatterns += [path("enrollment/", include("sponsorship.enrollment.urls"))]  # enrollment (issue 6)

# Hardening (issue 8): the admins' page of failed-login lockouts.
from config.ratelimit import lockouts_view  # noqa: E402

urlpatterns += [path("security/lockouts/", lockouts_view, name="security-lockouts")]
