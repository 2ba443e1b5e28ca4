from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from webapp.annotation import admin_views, workbench_views
from webapp.api import api
from webapp.chat import views as chat_views
from webapp.common import views as common_views


class LoginView(auth_views.LoginView):
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):  # type: ignore[no-untyped-def]
        context = super().get_context_data(**kwargs)
        context["demo_users"] = settings.ARBOR_DEMO_USERS if settings.ARBOR_DEMO_HINTS else []
        return context


urlpatterns = [
    path("", chat_views.chat, name="chat"),
    path("c/<uuid:conversation_id>/", chat_views.chat, name="conversation"),
    path("settings/", chat_views.settings_page, name="settings"),
    path("dashboard/", chat_views.dashboard, name="dashboard"),
    path("dashboard/campaigns/", admin_views.campaigns, name="campaigns"),
    path("dashboard/campaigns/<uuid:campaign_id>/", admin_views.campaign, name="campaign"),
    path("annotate/", workbench_views.workbench, name="annotate"),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("v1/", include("webapp.gateway.urls")),
    path("healthz", common_views.healthz, name="healthz"),
    path("readyz", common_views.readyz, name="readyz"),
    path("metrics", common_views.metrics, name="metrics"),
]
