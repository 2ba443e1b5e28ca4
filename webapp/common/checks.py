"""System checks of our own.

Django's deploy checks security.W001-W003 look for its middleware by exact
dotted path; MIDDLEWARE names subclasses of them (webapp.common.middleware), so
those three are silenced in settings and checked here, subclass-aware.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning
from django.utils.module_loading import import_string

# (our id, Django's id it stands for, the middleware it requires)
REQUIRED_MIDDLEWARE = [
    ("arbor.W001", "security.W001", "django.middleware.security.SecurityMiddleware"),
    ("arbor.W002", "security.W002", "django.middleware.clickjacking.XFrameOptionsMiddleware"),
    ("arbor.W003", "security.W003", "django.middleware.csrf.CsrfViewMiddleware"),
]


@register(Tags.security, deploy=True)
def check_security_middleware(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn when a security middleware (or a subclass of it) is missing from MIDDLEWARE."""
    loaded = [import_string(path) for path in settings.MIDDLEWARE]
    problems: list[CheckMessage] = []
    for our_id, django_id, path in REQUIRED_MIDDLEWARE:
        required = import_string(path)
        if not any(isinstance(mw, type) and issubclass(mw, required) for mw in loaded):
            problems.append(
                CheckWarning(
                    f"MIDDLEWARE has neither {path} nor a subclass of it.",
                    hint=f"Django's own check {django_id} says what is lost without it.",
                    id=our_id,
                )
            )
    return problems
