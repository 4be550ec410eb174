from django.urls import path

from exchange import api, api_funds

urlpatterns = [
    path("instruments/", api.InstrumentListApi.as_view(), name="instruments"),
    path("instruments/<str:code>/", api.InstrumentDetailApi.as_view(), name="instrument-detail"),
    path("instruments/<str:code>/depth/", api.DepthApi.as_view(), name="instrument-depth"),
    path("instruments/<str:code>/trades/", api.TapeApi.as_view(), name="instrument-trades"),
    path("instruments/<str:code>/candles/", api.CandlesApi.as_view(), name="instrument-candles"),
    path("price-index/", api.PriceIndexApi.as_view(), name="price-index"),
    path("orders/", api.OrderListApi.as_view(), name="orders"),
    path("orders/batch/", api.OrderBatchApi.as_view(), name="orders-batch"),
    path("orders/<int:order_id>/", api.OrderDetailApi.as_view(), name="order-detail"),
    path("balances/", api.BalanceApi.as_view(), name="balances"),
    path("fills/", api.FillListApi.as_view(), name="fills"),
    path("allocations/", api.AllocationListApi.as_view(), name="allocations"),
    path("funds/", api.FundsApi.as_view(), name="funds"),
    path("funds/requests/", api_funds.FundsRequestListApi.as_view(), name="funds-requests"),
    path("funds/requests/<int:request_id>/cancel/", api_funds.FundsRequestCancelApi.as_view(), name="funds-request-cancel"),
    path("funds/requests/<int:request_id>/complete/", api_funds.FundsRequestCompleteApi.as_view(),
         name="funds-request-complete"),
    path("funds/requests/<int:request_id>/refuse/", api_funds.FundsRequestRefuseApi.as_view(), name="funds-request-refuse"),
]
