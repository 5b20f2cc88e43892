"""The distribution's own name: PyPI's "wsgiserver" and "microapp" are other
projects, so nothing may tell users to install those, while the import names
and the command stay what they are."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Taken on PyPI by unrelated projects (checked with pip index versions).
TAKEN = {"wsgiserver", "microapp"}


def metadata() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def test_the_distribution_name_is_not_another_projects():
    name = metadata()["metadata"]["name"]
    assert re.sub(r"[-_.]+", "-", name).lower() not in TAKEN
    assert name == "wsgiserver-microapp"


def test_the_import_names_and_the_command_stay():
    config = metadata()
    assert "wsgiserver = wsgiserver.command:main" in config["options.entry_points"]["console_scripts"]
    packages = config["options.packages.find"]["include"].split()
    assert {"wsgiserver", "microapp"} <= set(packages)


def test_no_instruction_installs_a_taken_name():
    # "pip install wsgiserver", "pip install 'wsgiserver[http2]'", "microapp" alike;
    # the README's sentence explaining why is quoted in backticks mid-line.
    wrong = re.compile(r"pip install ['\"]?(?:wsgiserver|microapp)(?:\[|['\"]|\s|$)")
    found = []
    for path in [*ROOT.glob("*.md"), *(ROOT / "docs").rglob("*.md"), *(ROOT / "wsgiserver").rglob("*.py"),
                 *(ROOT / "examples").rglob("*"), *(ROOT / "tests").rglob("*.py")]:
        if not path.is_file() or path.suffix in (".so", ".pyc") or path == Path(__file__):
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if wrong.search(line) and "belong to unrelated projects" not in line \
                    and "would install someone else's" not in line:
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []
