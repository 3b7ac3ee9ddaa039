from django.urls import path

from . import views

urlpatterns = [
    path("dashboard/", views.dashboard, name="enrollment-dashboard"),
    path("campaign/", views.campaign, name="enrollment-campaign"),
    path("gifts/<uuid:public_id>/", views.gift_trace, name="enrollment-gift-trace"),
    path("batches/", views.batch_list, name="enrollment-batches"),
    path("batches/<int:batch_id>/<str:action>/", views.batch_action, name="enrollment-batch-action"),
    path("batches/<int:batch_id>/export.<str:fmt>", views.batch_download, name="enrollment-batch-export"),
    path("card-lists/", views.cardlist_upload, name="enrollment-cardlist-upload"),
    path("card-lists/demo.csv", views.demo_cardlist, name="enrollment-demo-cardlist"),
]
