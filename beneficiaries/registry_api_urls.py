from django.urls import path

from . import registry_apis as apis

urlpatterns = [
    path("members/", apis.MemberListApi.as_view(), name="api-registry-members"),
    path("members/bulk-approve/", apis.MemberBulkApproveApi.as_view(), name="api-registry-bulk-approve"),
    path("members/<int:pk>/", apis.MemberDetailApi.as_view(), name="api-registry-member"),
    path("members/<int:pk>/price/", apis.MemberPriceApi.as_view(), name="api-registry-member-price"),
    path("members/<int:pk>/submit/", apis.MemberSubmitApi.as_view(), name="api-registry-member-submit"),
    path("members/<int:pk>/approve/", apis.MemberApproveApi.as_view(), name="api-registry-member-approve"),
    path("members/<int:pk>/reject/", apis.MemberRejectApi.as_view(), name="api-registry-member-reject"),
    path("members/<int:pk>/return/", apis.MemberReturnApi.as_view(), name="api-registry-member-return"),
    path("members/<int:pk>/suspend/", apis.MemberSuspendApi.as_view(), name="api-registry-member-suspend"),
    path("households/", apis.HouseholdCreateApi.as_view(), name="api-registry-household-create"),
    path("households/<int:pk>/", apis.HouseholdDetailApi.as_view(), name="api-registry-household"),
    path("localities/<int:pk>/freeze/", apis.LocalityFreezeApi.as_view(), name="api-registry-freeze"),
    path("localities/<int:pk>/unfreeze/", apis.LocalityUnfreezeApi.as_view(), name="api-registry-unfreeze"),
    path("imports/", apis.ImportCreateApi.as_view(), name="api-registry-import-create"),
    path("imports/<int:pk>/", apis.ImportDetailApi.as_view(), name="api-registry-import"),
    path("imports/<int:pk>/errors.csv", apis.ImportErrorsApi.as_view(), name="api-registry-import-errors"),
]
