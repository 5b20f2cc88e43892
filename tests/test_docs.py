"""docs/architecture.md stays a map of the code: every file of wsgiserver/ is on it."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_file_of_the_package_is_named_in_the_architecture_page():
    text = (ROOT / "docs" / "architecture.md").read_text()
    package = ROOT / "wsgiserver"
    missing = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        # Files of a subpackage are named under its heading, by file name.
        name = relative.name if len(relative.parts) > 1 else str(relative)
        heading = f"### {relative.parts[0]}/" if len(relative.parts) > 1 else None
        if f"`{name}`" not in text or (heading is not None and heading not in text):
            missing.append(str(relative))
    assert missing == [], f"not on docs/architecture.md: {missing}"
