"""What the tests share: fixtures (registered through `pytest_plugins` in tests/conftest.py)
and helpers, imported from here and never from a test module or a conftest."""
