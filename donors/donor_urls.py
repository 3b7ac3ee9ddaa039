from django.urls import path

from config.ratelimit import ratelimit

from . import donor_views

urlpatterns = [
    path("", donor_views.dashboard, name="donor-dashboard"),
    path("signup/", ratelimit("signup")(donor_views.signup), name="donor-signup"),
    path("verify/<uidb64>/<token>/", donor_views.verify_email, name="donor-verify-email"),
    path("profile/", donor_views.profile, name="donor-profile"),
]

from django.contrib.auth import views as auth_views  # noqa: E402
from django.urls import reverse_lazy  # noqa: E402

urlpatterns += [
    path(
        "password-reset/",
        auth_views.PasswordResetView.as_view(success_url=reverse_lazy("password_reset_done")),
        name="password_reset",
    ),
    path("password-reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(success_url=reverse_lazy("password_reset_complete")),
        name="password_reset_confirm",
    ),
    path("password-reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
]
