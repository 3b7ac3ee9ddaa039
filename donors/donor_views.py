"""Donor pages: sign-up (with email verification), profile, and the dashboard of gifts."""

from django import forms
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .models import DonorKind, DonorProfile, Role, User
from .taxcode import normalize_tax_code


class EmailVerificationTokenGenerator(PasswordResetTokenGenerator):
    """Unlike the password-reset token, it survives logging in (sign-up logs the donor in)
    and dies once the address is verified or changed."""

    key_salt = "donors.EmailVerificationTokenGenerator"

    def _make_hash_value(self, user, timestamp):
        profile = DonorProfile.objects.filter(user=user).first()
        verified = profile.email_verified_at if profile else None
        return f"{user.pk}{user.email}{verified}{timestamp}"


email_verification_token = EmailVerificationTokenGenerator()


class ProfileForm(forms.ModelForm):
    class Meta:
        model = DonorProfile
        fields = ["kind", "company_name", "tax_code", "phone", "address"]

    def clean(self):
        data = super().clean()
        kind = data.get("kind") or DonorKind.PERSON
        if kind == DonorKind.BUSINESS and not data.get("company_name"):
            self.add_error("company_name", _("A business donor needs the company name."))
        try:
            data["tax_code"] = normalize_tax_code(data.get("tax_code", ""), kind=kind)
        except ValidationError as exc:
            self.add_error("tax_code", exc)
        return data


class SignupForm(ProfileForm):
    email = forms.EmailField(label=gettext_lazy("Email"))
    full_name = forms.CharField(label=gettext_lazy("Full name"), max_length=200)
    password = forms.CharField(label=gettext_lazy("Password"), widget=forms.PasswordInput)

    class Meta(ProfileForm.Meta):
        fields = ["email", "full_name", "password", *ProfileForm.Meta.fields]

    def clean_email(self):
        email = self.cleaned_data["email"].lower()
        if User.objects.filter(email=email).exists():
            raise ValidationError(_("An account with this email already exists."))
        return email

    def clean_password(self):
        password = self.cleaned_data["password"]
        validate_password(password)
        return password


def send_verification(request, user: User) -> None:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = email_verification_token.make_token(user)
    url = request.build_absolute_uri(reverse("donor-verify-email", args=[uid, token]))
    send_mail(
        _("Confirm your email for chungtay"),
        _("Open this link to confirm your email address: %(url)s") % {"url": url},
        None,
        [user.email],
    )


def signup(request):
    if request.method == "POST":
        form = SignupForm(request.POST)
        if form.is_valid():
            v = form.cleaned_data
            user = User.objects.create_user(v["email"], v["password"], full_name=v["full_name"], role=Role.DONOR)
            profile = form.save(commit=False)
            profile.user = user
            profile.save()
            send_verification(request, user)
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, _("Welcome! We sent you an email to confirm your address."))
            return redirect("donor-dashboard")
    else:
        form = SignupForm()
    return render(request, "donors/signup.html", {"form": form})


def verify_email(request, uidb64, token):
    try:
        user = User.objects.get(pk=int(force_str(urlsafe_base64_decode(uidb64))))
    except (ValueError, User.DoesNotExist):
        user = None
    if user is None or not email_verification_token.check_token(user, token):
        messages.error(request, _("This confirmation link is invalid or has expired."))
        return redirect("home")
    profile, _created = DonorProfile.objects.get_or_create(user=user)
    if profile.email_verified_at is None:
        profile.email_verified_at = timezone.now()
        profile.save(update_fields=["email_verified_at"])
    messages.success(request, _("Your email address is confirmed."))
    return redirect("donor-dashboard")


@login_required
def profile(request):
    instance, _created = DonorProfile.objects.get_or_create(user=request.user)
    form = ProfileForm(request.POST or None, instance=instance)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, _("Saved."))
        return redirect("donor-dashboard")
    return render(request, "donors/profile.html", {"form": form})


@login_required
def dashboard(request):
    """Every gift of this donor (only theirs) with its status and receipt link."""
    from sponsorship.models import Donation
    from sponsorship.services.donations import PAID_STATUSES

    donations = Donation.objects.filter(donor=request.user).select_related("locality").order_by("-created_at")
    profile = DonorProfile.objects.filter(user=request.user).first()
    return render(
        request,
        "donors/dashboard.html",
        {"donations": donations, "paid_statuses": set(PAID_STATUSES), "profile": profile},
    )
