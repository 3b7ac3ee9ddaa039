from django.contrib import admin

from .models import Locality, LocalityMapping


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
