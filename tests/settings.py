"""Settings for the test run and for the processes the tests start.

Tests use their own Redis databases and a fixed, non-secret key, so `pytest`
works without a `.env` and never touches the development data.
"""

import os
import tempfile

os.environ.setdefault("ARBOR_SECRET_KEY", "tests-only-not-a-secret-" + "x" * 32)
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/10")
os.environ.setdefault("ARBOR_DEBUG", "false")
# Frozen exports go to a scratch folder, never into the repository's var/.
os.environ.setdefault("ARBOR_EXPORT_DIR", tempfile.mkdtemp(prefix="arbor-test-exports-"))
# The test process itself opens connections from helper threads; no pool there.
# The processes it starts turn the pool back on (tests/conftest.py).
os.environ.setdefault("ARBOR_DB_POOL", "false")

from webapp.settings import *  # noqa: F403

# Fast password hashing: tests create many users.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
