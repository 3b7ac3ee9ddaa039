from django.contrib import admin

from .models import (
    Household,
    ImportJob,
    Locality,
    LocalityFreeze,
    LocalityMapping,
    Member,
    MemberTransition,
    PersonalDataView,
    PremiumSchedule,
    SupportRule,
    VoluntarySIParameters,
)


@admin.register(Locality)
class LocalityAdmin(admin.ModelAdmin):
    list_display = ["name", "scheme", "level", "code", "province"]
    list_filter = ["scheme", "level"]
    search_fields = ["name", "name_ascii", "codename", "=code"]
    raw_id_fields = ["parent", "province"]
    list_select_related = ["province"]


@admin.register(LocalityMapping)
class LocalityMappingAdmin(admin.ModelAdmin):
    list_display = ["legacy", "current"]
    raw_id_fields = ["legacy", "current"]
    list_select_related = ["legacy", "current"]
    search_fields = ["legacy__name_ascii", "current__name_ascii"]


@admin.register(PremiumSchedule)
class PremiumScheduleAdmin(admin.ModelAdmin):
    list_display = [
        "valid_from",
        "base_salary_vnd",
        "hi_rate",
        "ladder_2",
        "ladder_3",
        "ladder_4",
        "ladder_5",
        "source",
    ]


@admin.register(SupportRule)
class SupportRuleAdmin(admin.ModelAdmin):
    list_display = ["group", "jurisdiction", "locality", "share", "valid_from", "valid_to", "source"]
    list_filter = ["group", "jurisdiction"]
    raw_id_fields = ["locality"]


@admin.register(VoluntarySIParameters)
class VoluntarySIParametersAdmin(admin.ModelAdmin):
    list_display = ["valid_from", "contribution_rate", "min_income_vnd", "share_poor", "share_near_poor", "source"]


class MemberTransitionInline(admin.TabularInline):
    model = MemberTransition
    extra = 0
    can_delete = False
    readonly_fields = ["at", "actor", "from_status", "to_status", "reason"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    """Read-mostly: status changes go through the review services, never through the admin."""

    list_display = ["full_name", "locality", "status", "is_possible_duplicate"]
    list_filter = ["status", "is_possible_duplicate"]
    search_fields = ["name_ascii", "=personal_id"]
    raw_id_fields = ["household", "locality", "submitted_by"]
    readonly_fields = ["status", "submitted_by"]
    inlines = [MemberTransitionInline]


@admin.register(Household)
class HouseholdAdmin(admin.ModelAdmin):
    list_display = ["external_ref", "locality", "poverty_class"]
    list_filter = ["poverty_class", "is_poor_commune", "is_ethnic_minority", "is_island_commune"]
    raw_id_fields = ["locality", "created_by", "import_job"]
    search_fields = ["external_ref"]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["original_name", "created_by", "status", "rows_done", "rows_total", "rows_failed", "created_at"]
    readonly_fields = [f.name for f in ImportJob._meta.fields]


@admin.register(LocalityFreeze)
class LocalityFreezeAdmin(admin.ModelAdmin):
    list_display = ["locality", "frozen_by", "frozen_at", "unfrozen_at"]
    raw_id_fields = ["locality", "frozen_by", "unfrozen_by"]


@admin.register(PersonalDataView)
class PersonalDataViewAdmin(admin.ModelAdmin):
    list_display = ["viewer", "household", "member", "channel", "at"]
    readonly_fields = ["viewer", "household", "member", "channel", "at"]

    def has_add_permission(self, request):
        return False
