from django.urls import path

from . import apis

urlpatterns = [
    path("runs/", apis.MatchingRunListApi.as_view(), name="api-matching-runs"),
    path("cards/<int:card_id>/allocations/", apis.CardAllocationListApi.as_view(), name="api-card-allocations"),
    path("my-cards/", apis.DonorCardListApi.as_view(), name="api-matching-my-cards"),
    path("holds/", apis.HoldCreateApi.as_view(), name="api-matching-hold-create"),
]
