from django.urls import path

from . import views

urlpatterns = [
    path("", views.finance_home, name="finance-home"),
    path("bank-lines/<int:line_id>/match/", views.finance_match_line, name="finance-match-line"),
    path("donations/<uuid:public_id>/refund/", views.finance_refund, name="finance-refund"),
]
