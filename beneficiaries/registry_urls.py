from django.urls import path

from . import registry_views as views

urlpatterns = [
    path("", views.review_queue, name="registry-queue"),
    path("households/new/", views.household_new, name="registry-household-new"),
    path("households/<int:pk>/", views.household_detail, name="registry-household"),
    path("members/<int:pk>/", views.member_detail, name="registry-member"),
    path("members/<int:pk>/<str:action>/", views.member_action, name="registry-member-action"),
    path("imports/", views.import_list, name="registry-imports"),
    path("imports/<int:pk>/", views.import_detail, name="registry-import"),
    path("imports/<int:pk>/errors.csv", views.import_errors, name="registry-import-errors"),
]
