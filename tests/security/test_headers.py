"""Security headers, cookies and the WebSocket Origin check.

- Every page and API answer carries a CSP without inline scripts or styles (no
  'unsafe-inline'/'unsafe-eval', no wildcard sources), frame-ancestors 'none' plus
  X-Frame-Options DENY, nosniff and a same-origin referrer policy.
- Pages contain no inline executable <script>, no <style> and no on* handlers (the
  boot data is an application/json data block, which CSP does not execute).
- The session cookie is HttpOnly and SameSite; with ARBOR_TLS=true (read in a fresh
  process, as production does) session and CSRF cookies are Secure, HSTS is on and
  the proxy's X-Forwarded-Proto is trusted.
- A WebSocket from a foreign Origin is refused at the handshake (live Daphne).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest
import websockets
from django.conf import settings
from django.test import Client, override_settings

from tests.stack import ROOT

PAGES = ["/accounts/login/", "/", "/settings/", "/dashboard/", "/api/conversations", "/healthz"]


def csp_directives(header: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


def assert_strict_headers(response: Any) -> None:
    csp = response.get("Content-Security-Policy")
    assert csp, f"no CSP on {response}"
    d = csp_directives(csp)
    for directive in ("script-src", "style-src"):
        sources = d.get(directive, d.get("default-src"))
        assert sources, directive
        bad = {"'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"}
        assert not bad & set(sources), f"{directive} {sources}"
    assert d.get("default-src") == ["'self'"]
    assert d.get("object-src") == ["'none'"]
    assert d.get("frame-ancestors") == ["'none'"]
    assert d.get("base-uri") == ["'self'"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


@pytest.mark.django_db
@pytest.mark.parametrize("path", PAGES)
def test_headers_on_pages_and_api(alice: Any, path: str) -> None:
    anon = Client().get(path)
    assert_strict_headers(anon)
    client = Client()
    client.force_login(alice)
    assert_strict_headers(client.get(path))


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/accounts/login/", "/", "/settings/", "/dashboard/"])
def test_pages_have_no_inline_code(admin_user: Any, path: str) -> None:
    client = Client()
    if path != "/accounts/login/":
        client.force_login(admin_user)
    r = client.get(path)
    assert r.status_code == 200
    html = r.content.decode()
    for tag in re.findall(r"<script\b[^>]*>", html, flags=re.I):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"<style\b", html, flags=re.I)
    assert not re.search(r"\son[a-z]+\s*=", html, flags=re.I), "inline event handler"
    assert not re.search(r"\sstyle\s*=", html, flags=re.I), "inline style attribute"
    assert "javascript:" not in html.lower()


@pytest.mark.django_db
def test_session_cookie_flags(alice: Any) -> None:
    client = Client()
    page = client.get("/accounts/login/")
    token = page.cookies[settings.CSRF_COOKIE_NAME].value
    r = client.post(
        "/accounts/login/",
        {"username": "alice", "password": "alice-password", "csrfmiddlewaretoken": token},
    )
    assert r.status_code == 302
    cookie = r.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"]
    assert cookie["samesite"].lower() in ("lax", "strict")
    assert r.cookies[settings.CSRF_COOKIE_NAME]["samesite"].lower() in ("lax", "strict")


def tls_settings() -> dict[str, Any]:
    """The settings a process started with ARBOR_TLS=true computes."""
    code = (
        "import json, django\n"
        "from django.conf import settings as s\n"
        "django.setup()\n"
        "print(json.dumps({k: getattr(s, k, None) for k in ("
        "'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', "
        "'SECURE_PROXY_SSL_HEADER', 'SESSION_COOKIE_HTTPONLY')}))\n"
    )
    env = {**os.environ, "ARBOR_TLS": "true", "DJANGO_SETTINGS_MODULE": "tests.settings"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_tls_settings_from_environment() -> None:
    s = tls_settings()
    assert s["SESSION_COOKIE_SECURE"] is True
    assert s["CSRF_COOKIE_SECURE"] is True
    assert s["SESSION_COOKIE_HTTPONLY"] is True
    assert s["SECURE_HSTS_SECONDS"] >= 180 * 24 * 3600
    assert s["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


@pytest.mark.django_db
def test_tls_cookies_and_hsts_behind_proxy(alice: Any) -> None:
    s = tls_settings()
    with override_settings(
        SESSION_COOKIE_SECURE=s["SESSION_COOKIE_SECURE"],
        CSRF_COOKIE_SECURE=s["CSRF_COOKIE_SECURE"],
        SECURE_HSTS_SECONDS=s["SECURE_HSTS_SECONDS"],
        SECURE_PROXY_SSL_HEADER=tuple(s["SECURE_PROXY_SSL_HEADER"]),
    ):
        client = Client(HTTP_X_FORWARDED_PROTO="https")
        page = client.get("/accounts/login/")
        assert page.cookies[settings.CSRF_COOKIE_NAME]["secure"]
        assert "max-age=" in page["Strict-Transport-Security"]
        assert_strict_headers(page)
        r = client.post(
            "/accounts/login/",
            {
                "username": "alice",
                "password": "alice-password",
                "csrfmiddlewaretoken": page.cookies[settings.CSRF_COOKIE_NAME].value,
            },
        )
        assert r.status_code == 302
        assert r.cookies[settings.SESSION_COOKIE_NAME]["secure"]
        assert r.cookies[settings.SESSION_COOKIE_NAME]["httponly"]
        # Plain http (no proxy header) gets no HSTS.
        assert "Strict-Transport-Security" not in Client().get("/healthz")


@pytest.mark.integration
@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1.evil.example", "null"])
async def test_websocket_refuses_foreign_origin(live: Any, alice: Any, origin: str) -> None:
    from tests.conftest import ws_connect

    with pytest.raises(websockets.InvalidStatus) as exc:
        await ws_connect(live, alice, origin=origin)
    assert exc.value.response.status_code == 403


@pytest.mark.integration
async def test_websocket_same_origin_accepted(live: Any, alice: Any) -> None:
    from tests.conftest import ws_connect

    ws = await ws_connect(live, alice)
    await ws.send({"type": "ping", "req": "p"})
    assert await ws.recv() == {"type": "pong", "req": "p"}
    await ws.conn.close()
