from django.urls import path

from config.ratelimit import ratelimit

from . import views

urlpatterns = [
    path("", ratelimit("donation", key="user")(views.donate), name="donate"),
    path("communes/<int:province_id>/", views.donate_communes, name="donate-communes"),
    path("households/<int:commune_id>/", views.donate_households, name="donate-households"),
    path("<uuid:public_id>/pay/", views.donate_pay, name="donate-pay"),
    path("<uuid:public_id>/thanks/", views.donate_thanks, name="donate-thanks"),
    path("<uuid:public_id>/status/", views.donate_status, name="donate-status"),
    path("<uuid:public_id>/receipt.pdf", views.receipt_download, name="donate-receipt"),
]
