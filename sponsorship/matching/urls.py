from django.urls import path

from . import views

urlpatterns = [
    path("", views.runs_page, name="matching-runs"),
    path("cards/<int:card_id>/", views.card_gifts_page, name="matching-card-gifts"),
]
