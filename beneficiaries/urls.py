from django.urls import path

from . import views

urlpatterns = [path("", views.locality_list, name="locality-list")]
