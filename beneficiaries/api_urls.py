from django.urls import path

from .apis import LocalitySearchApi

urlpatterns = [path("", LocalitySearchApi.as_view(), name="api-locality-search")]
