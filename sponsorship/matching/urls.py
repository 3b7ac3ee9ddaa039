from django.urls import path

from . import views

urlpatterns = [
    path("", views.runs_page, name="matching-runs"),
    path("cards/<int:card_id>/", views.card_gifts_page, name="matching-card-gifts"),
    path("flagged/", views.flagged_page, name="matching-flagged"),
    path("unmatched/<uuid:token>/", views.unmatched_money_page, name="matching-unmatched"),
    path("offers/", views.my_offers_page, name="matching-my-offers"),
    path("offers/<int:offer_id>/settle/", views.offer_settle, name="matching-offer-settle"),
]
