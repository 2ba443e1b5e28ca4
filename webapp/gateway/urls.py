"""Routes of the OpenAI-compatible gateway, mounted at /v1/ (spec/http-api.md)."""

from django.urls import path

from webapp.gateway import views

urlpatterns = [
    path("chat/completions", views.chat_completions, name="gateway-chat-completions"),
    path("models", views.list_models, name="gateway-models"),
]
