"""What the browser tests and their conftest share."""

from __future__ import annotations

PASSWORD = "browser-test-password"
