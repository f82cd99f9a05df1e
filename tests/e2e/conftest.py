"""End to end: the simulated AWS over HTTP and real workers in subprocesses; their fixtures
(`aws`, `simulated_aws`, `worker`) are in tests/support, shared with tests/browser."""
