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


def test_every_module_is_named_in_the_readmes_how_it_is_built():
    text = (ROOT / "README.md").read_text()
    block = text.split("### How it is built", 1)[1].split("```", 2)[1]
    package = ROOT / "wsgiserver"
    missing = [str(path.relative_to(package)) for path in sorted(package.rglob("*.py"))
               if path.name not in block and not (path.name == "__init__.py"
                                                  and path.parent != package)]
    assert missing == [], f"not in the README's 'How it is built': {missing}"
