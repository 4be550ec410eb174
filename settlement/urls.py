from django.urls import path

from settlement import views

app_name = "settlement"
urlpatterns = [
    path("deliveries/", views.deliveries, name="deliveries"),
    path("deliveries/<int:allocation_id>/start/", views.delivery_start_view, name="delivery_start"),
    path("deliveries/<int:allocation_id>/metering/", views.metering_report_view, name="metering_report"),
    path("metering/upload/", views.metering_upload, name="metering_upload"),
    path("metering/upload/chunk/", views.metering_upload_chunk, name="metering_upload_chunk"),
    path("capacity/", views.capacity, name="capacity"),
    path("capacity/<int:allocation_id>/access/", views.delivery_answer_view, name="delivery_answer"),
    path("capacity/<int:allocation_id>/dispute/", views.dispute_open_view, name="dispute_open"),
    path("sla/", views.sla, name="sla"),
]
