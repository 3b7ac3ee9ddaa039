from django.urls import path

from config.ratelimit import ratelimit

from . import apis

urlpatterns = [
    path("donations/", apis.DonationListApi.as_view(), name="api-donation-list"),
    path(
        "donations/create/",
        ratelimit("donation", key="user")(apis.DonationCreateApi.as_view()),
        name="api-donation-create",
    ),
    path("donations/<uuid:public_id>/", apis.DonationDetailApi.as_view(), name="api-donation-detail"),
    path("donations/<uuid:public_id>/card-setup/", apis.CardSetupApi.as_view(), name="api-card-setup"),
    path(
        "donations/<uuid:public_id>/card-pay/",
        ratelimit("card", key="user")(apis.CardPayApi.as_view()),
        name="api-card-pay",
    ),
    path("donations/<uuid:public_id>/refunds/", apis.RefundCreateApi.as_view(), name="api-refund-create"),
    path("finance/ledger/", apis.LedgerSummaryApi.as_view(), name="api-ledger"),
    path("finance/statements/", apis.StatementUploadApi.as_view(), name="api-statement-upload"),
    path("finance/bank-lines/", apis.BankLineListApi.as_view(), name="api-bank-lines"),
    path("finance/bank-lines/<int:line_id>/match/", apis.BankLineMatchApi.as_view(), name="api-bank-line-match"),
]
