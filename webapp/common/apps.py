from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "webapp.common"
    label = "common"

    def ready(self) -> None:
        from webapp.common import checks  # noqa: F401 - registers the system checks
