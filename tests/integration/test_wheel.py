"""A regular (non-editable) install works outside the checkout: the wheel carries the
migrations and JSON Schemas, and `orgsync migrate` from it creates every table.

The wheel is built from a copy of the files the Dockerfile copies, installed with --no-deps
into a fresh virtual environment that borrows this one's dependencies through a .pth file
(offline and fast), and run from a directory outside the checkout.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "services", "pipelines", "schema", "orgsync")


def run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (ROOT / name).is_dir():  # orgsync/ holds links to the others: kept as links
            shutil.copytree(ROOT / name, source / name, symlinks=True)
        else:
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "--quiet", "-w", out, source, cwd=source)  # fmt: skip
    (built,) = out.glob("orgsync-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ directory of a fresh venv with the wheel installed in it."""
    venv = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--quiet",
        wheel, cwd=venv)  # fmt: skip
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                    cwd=venv).strip())  # fmt: skip
    # the dependencies come from this environment; its editable orgsync does not (a .pth
    # line only adds a directory: the editable finder in it never runs)
    (site / "zz_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv / "bin"


@pytest.fixture
def new_database(postgres_url: str) -> Iterator[str]:
    name = f"orgsync_wheel_{uuid.uuid4().hex[:8]}"
    yield make_conninfo(postgres_url, dbname=name)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {row[0] for row in rows}


def test_the_wheel_carries_every_migration_and_json_schema(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, pattern in (("migrations", "*.sql"), ("messages", "*.json")):
        for path in (ROOT / "schema" / folder).glob(pattern):
            assert f"orgsync/schema/{folder}/{path.name}" in names


def test_the_wheel_claims_no_top_level_name_but_orgsync(wheel: Path) -> None:
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"orgsync"}
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("services", "services/commands", "services/web", "pipelines", "schema"):
        assert f"orgsync/{package}/__init__.py" in names


def test_orgsync_migrate_from_an_installed_wheel_creates_every_table(
    installed: Path, new_database: str, template_database: str, postgres_url: str, tmp_path: Path
) -> None:
    env = {"ORGSYNC_DATABASE_URL": new_database, "PATH": f"{installed}:/usr/bin:/bin"}
    where = run(installed / "python", "-c", "import orgsync.services as s; print(s.__file__)",
                cwd=tmp_path, env=env)  # fmt: skip
    assert str(installed.parent) in where and str(ROOT) not in where

    out = run(installed / "orgsync", "migrate", cwd=tmp_path, env=env)

    migrations = sorted(p.stem for p in (ROOT / "schema" / "migrations").glob("*.sql"))
    assert f"applied {len(migrations)} migration(s): {', '.join(migrations)}" in out
    expected = tables(make_conninfo(postgres_url, dbname=template_database))
    assert {"organizations", "accounts", "schema_migrations"} <= expected
    assert tables(new_database) == expected


def test_the_installed_package_reads_its_json_schemas_with_importlib_resources(
    installed: Path, tmp_path: Path
) -> None:
    out = run(
        installed / "python",
        "-c",
        "from orgsync import schema; print(schema.__file__);"
        " print(schema.message_schema('registration_request')['title'])",
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
    )
    where, title = out.splitlines()
    assert str(installed.parent) in where
    shipped = ROOT / "schema" / "messages" / "registration_request.json"
    assert title == json.loads(shipped.read_text())["title"]


def test_the_installed_orgsync_knows_its_version(installed: Path, tmp_path: Path) -> None:
    out = run(installed / "orgsync", "--version", cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert out.strip() == f"orgsync {version}"


def test_the_installed_pipelines_read_their_named_statements(
    installed: Path, tmp_path: Path
) -> None:
    out = run(
        installed / "python",
        "-c",
        "from orgsync.pipelines import discovery, sql; print(len(sql.load('orgsync.pipelines')))",
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
    )
    shipped = (ROOT / "pipelines" / "queries.sql").read_text()
    assert int(out) == shipped.count("\n-- name: ") > 0
