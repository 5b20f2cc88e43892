"""The README's set-up commands are the ones CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("python3 -m pip install")]


def test_ci_runs_the_readme_test_command():
    readme = _commands((ROOT / "README.md").read_text())
    ci = _commands((ROOT / ".ci" / "run").read_text())
    assert len(readme) == 2, "the README gives exactly two set-up commands"
    assert ci[-1] == readme[1], "CI ends with the README's test command, verbatim"


def test_readme_first_command_serves_the_bundled_app():
    first = _commands((ROOT / "README.md").read_text())[0]
    assert first.endswith("wsgiserver microapp:app --directory /tmp")
