"""The release as a user gets it: the wheel, and the GitHub Action, outside the checkout.

The wheel is built from this checkout and installed into a fresh virtual
environment in a temp folder (its dependencies come from the package index,
or pip's cache); the Action's install step runs as the runner would run it.
Each then validates and plans the example config on the embedded sandbox from
a folder that is not the checkout, so nothing can come from the source tree.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.test_ci_examples import run_action_step

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "kitten_labeling" / "batchplan.yaml"
SCHEMAS = ROOT / "schemas"


def clean_env() -> dict[str, str]:
    """The environment without this checkout's venv or any Python path."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if not p.startswith(str(ROOT))
    )
    return env


def run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: build with the hatchling of the test extra, no download.
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = out.glob("*.whl")
    return found


@pytest.mark.slow
def test_the_wheel_is_scale_batchplan_with_its_schemas(wheel: Path) -> None:
    assert wheel.name.startswith("scale_batchplan-0.1.0-")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        headers = archive.read(metadata).decode()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = archive.read(entry_points).decode()
    assert "\nName: scale-batchplan\n" in headers
    assert "batchplan = batchplan.__main__:main" in scripts
    for schema in SCHEMAS.glob("*.schema.json"):
        assert f"batchplan/_schemas/{schema.name}" in names
    assert "batchplan/cli.py" in names and "batchplan/sandbox/__init__.py" in names
    assert not any(n.startswith(("tests/", "schemas/")) for n in names)


@pytest.mark.slow
def test_the_wheel_installs_and_runs_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    made = run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    assert made.returncode == 0, made.stderr
    installed = run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        tmp_path,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr

    batchplan = str(venv / "bin" / "batchplan")
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(EXAMPLE, project / "batchplan.yml")

    located = run(
        [str(venv / "bin" / "python"), "-c", "import batchplan; print(batchplan.__file__)"], project
    )
    assert located.stdout.strip().startswith(str(venv)), located.stdout

    version = run([batchplan, "--version"], project)
    assert (version.returncode, version.stdout.strip()) == (0, "batchplan, version 0.1.0")

    for name, filename in (
        ("config", "batchplan.schema.json"),
        ("plan", "plan.schema.json"),
        ("apply-events", "apply-events.schema.json"),
    ):
        schema = run([batchplan, "schema", name], project)
        assert schema.returncode == 0, schema.stderr
        assert schema.stdout == (SCHEMAS / filename).read_text(encoding="utf-8")

    valid = run([batchplan, "validate"], project)
    assert valid.returncode == 0, valid.stderr
    assert valid.stdout.startswith("Configuration is valid:")

    planned = run([batchplan, "--endpoint", "sandbox", "plan", "--detailed-exitcode"], project)
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert "to create" in planned.stdout
    assert (project / ".batchplan" / "sandbox.db").is_file()


@pytest.mark.slow
def test_the_action_installs_from_its_checkout_and_runs(tmp_path: Path) -> None:
    runner_temp = tmp_path / "runner"
    runner_temp.mkdir()
    workspace = tmp_path / "workspace"
    (workspace / "batches").mkdir(parents=True)
    shutil.copy(EXAMPLE, workspace / "batches" / "kitten.yaml")

    code, _, output = run_action_step("Install batchplan", {}, workspace, runner_temp, clean_env())
    assert code == 0, output
    assert "batchplan, version 0.1.0" in output
    venv_bin = runner_temp / "batchplan-venv" / "bin"
    assert (runner_temp / "github_path").read_text().splitlines() == [str(venv_bin)]
    # boto3 came with the [s3] extra.
    boto3 = run([str(venv_bin / "python"), "-c", "import boto3"], tmp_path)
    assert boto3.returncode == 0, boto3.stderr

    sandbox = {"endpoint": f"sandbox:{tmp_path / 'sandbox.db'}", "paths": "batches/"}
    steps = [
        ({"command": "validate", "paths": "batches/"}, "0"),
        ({"command": "plan", **sandbox, "out": "plan.json", "detailed-exitcode": "true"}, "2"),
        ({"command": "apply", **sandbox, "paths": "plan.json"}, "0"),
        ({"command": "plan", **sandbox, "detailed-exitcode": "true"}, "0"),
    ]
    for inputs, exitcode in steps:
        code, outputs, output = run_action_step("run", inputs, workspace, runner_temp, clean_env())
        assert code == 0, output
        assert outputs["exitcode"] == exitcode, (inputs, output)


# --- nothing sends users to the unrelated `batchplan` on the package index ----------

INSTALLER = re.compile(r"\b(?:pipx?3?|uv pip|uv tool|uv|poetry)\s+(?:install|add|run)\b(.*)")
WRONG_NAME = re.compile(r"batchplan(?:\[[^\]]*\])?(?:(?:==|>=|<=|~=|!=|<|>).*)?")
SKIP_DIRS = {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__"}
SKIP_DIRS |= {".batchplan", "dist", "build", "node_modules", ".hypothesis"}


def installs_index_batchplan(line: str) -> bool:
    """Whether a line installs the distribution named ``batchplan`` (not ours)."""
    found = INSTALLER.search(line)
    if not found:
        return False
    try:
        tokens = shlex.split(found.group(1), comments=True)
    except ValueError:
        tokens = found.group(1).split()
    # A requirement may carry a direct reference: "NAME[extra] @ git+https://...".
    names = (re.split(r"[\s@;]", token.strip("\"'`"), maxsplit=1)[0] for token in tokens)
    return any(WRONG_NAME.fullmatch(name) for name in names)


@pytest.mark.parametrize(
    ("line", "wrong"),
    [
        ('run: pip install "batchplan[s3]==$BATCHPLAN_VERSION"', True),
        ("- pip install --quiet batchplan", True),
        ("pipx install 'batchplan>=0.1'", True),
        ("\"the S3 state backend needs boto3: pip install 'batchplan[s3]'\"", True),
        ('pip install "batchplan[s3] @ git+https://example.com/x/batchplan@v0.1.0"', True),
        ('pip install "scale-batchplan[s3] @ git+https://example.com/x/batchplan@v0.1.0"', False),
        ("pipx install 'git+https://example.com/your-org/batchplan@v0.1.0'", False),
        ("$(VENV)/bin/pip install --quiet -e '.[test]'", False),
        ("pip install 'scale-batchplan[s3]'", False),
        ("batchplan plan --out plan.json", False),
    ],
)
def test_the_install_detector(line: str, wrong: bool) -> None:
    assert installs_index_batchplan(line) is wrong


def project_text_files() -> list[Path]:
    files = []
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in names:
            path = Path(folder) / name
            if path.suffix in (".db", ".whl", ".pyc", ".png", ".gz") or path == Path(__file__):
                continue
            files.append(path)
    return files


def test_nothing_installs_batchplan_from_the_package_index() -> None:
    """Docs, examples, error messages, scripts: the distribution is scale-batchplan."""
    files = project_text_files()
    assert ROOT / "README.md" in files and ROOT / "batchplan" / "state" / "s3.py" in files
    offences = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if installs_index_batchplan(line):
                offences.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offences, "\n".join(offences)
