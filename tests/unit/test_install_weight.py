"""`make demo` installs what the demo needs (orgsync and the simulated AWS), not the test tools;
`make test` installs those over it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = (ROOT / "Makefile").read_text()


def recipe(target: str) -> tuple[str, str]:
    """(prerequisites, recipe) of a Makefile rule."""
    found = re.search(rf"^{re.escape(target)}:(.*)\n((?:\t.*\n)*)", MAKEFILE, re.M)
    assert found, target
    return found[1], found[2]


def test_the_demo_installs_the_sim_extra_only() -> None:
    prerequisites, _ = recipe("demo")
    assert "$(DEMO_STAMP)" in prerequisites and "$(STAMP)" not in prerequisites.split()
    _, install = recipe("$(DEMO_STAMP)")
    assert "-e '.[sim]'" in install and "test" not in install


def test_the_sim_extra_holds_no_test_tool() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = {re.split(r"[\[<>=]", item)[0] for item in extras["sim"]}
    assert names == {"moto"}
    assert "orgsync[sim]" in extras["test"]  # the tests run the simulated AWS too


def test_the_tests_install_the_test_extra() -> None:
    _, install = recipe("$(STAMP)")
    assert "-e '.[test]'" in install
    assert "$(STAMP)" in recipe("test")[0]
