"""deploy/aws/: cfn-lint, run as a program, finds nothing in the templates (the policies'
checks are in tests/unit/test_deploy_aws.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
TEMPLATES = sorted((Path(__file__).resolve().parents[2] / "deploy" / "aws").glob("*.yaml"))


def test_cfn_lint_finds_nothing_in_the_templates() -> None:
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent))
    assert cfn_lint, "cfn-lint is not installed: pip install -e '.[test]' (make test does)"
    done = subprocess.run(
        [cfn_lint, *map(str, TEMPLATES)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(TEMPLATES) == 4
