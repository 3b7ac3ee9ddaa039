"""The project's URLs plus one route nobody wrote a matrix row for (used to show the matrix
test notices new routes)."""

from django.http import HttpResponse
from django.urls import path

from config.urls import urlpatterns as project_urlpatterns

urlpatterns = [*project_urlpatterns, path("secret-new-page/", lambda r: HttpResponse("hi"), name="secret-new-page")]
