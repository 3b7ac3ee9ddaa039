"""Admin for the matching features: match offers (businesses' pledges), holds, decisions on
unmatched money. Money is never edited here: offers' use and the ledger are written by services."""

from django.contrib import admin

from .feature_models import GiftExpiry, Hold, MatchOffer, OfferMatch


class OfferMatchInline(admin.TabularInline):
    model = OfferMatch
    extra = 0
    can_delete = False
    readonly_fields = ("source", "matched", "amount_vnd", "created_at")


@admin.register(MatchOffer)
class MatchOfferAdmin(admin.ModelAdmin):
    list_display = ("name", "business", "ratio", "cap_vnd", "used_vnd", "is_active", "starts_at", "ends_at")
    list_filter = ("is_active",)
    readonly_fields = ("used_vnd", "created_at")
    filter_horizontal = ("localities",)
    raw_id_fields = ("business",)
    inlines = [OfferMatchInline]


@admin.register(Hold)
class HoldAdmin(admin.ModelAdmin):
    list_display = ("id", "donation", "household", "locality", "amount_vnd", "status", "expires_at")
    list_filter = ("status",)
    raw_id_fields = ("donation", "household", "locality", "province")


@admin.register(GiftExpiry)
class GiftExpiryAdmin(admin.ModelAdmin):
    list_display = ("donation", "outcome", "amount_vnd", "donor_choice", "created_at", "notified_at")
    list_filter = ("outcome", "donor_choice")
    readonly_fields = ("donation", "outcome", "amount_vnd", "reason", "token", "created_at", "notified_at")
