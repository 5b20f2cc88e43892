"""The README's WebTest example runs as written (issue: testing in-process)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_webtest_example_runs():
    text = (ROOT / "README.md").read_text()
    section = text.split("### Testing in-process with WebTest", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the WebTest section has its example"
    exec(compile(block.group(1), "README.md (WebTest example)", "exec"), {})
