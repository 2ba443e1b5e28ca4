"""The browser fixtures of tests/e2e (one Chromium per module, a page per test)."""

from tests.e2e.conftest import browser, page

__all__ = ["browser", "page"]
