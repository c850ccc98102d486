"""The documentation's code runs, and its API pages cover every public name."""

import importlib.util
import re
from pathlib import Path

import pytest


DOCS = Path(__file__).parent.parent / "docs"


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.DOTALL)


@pytest.mark.slow
def test_getting_started_runs():
    """Every Python block of the page, in order, in one namespace, as a reader would."""
    blocks = python_blocks(DOCS / "getting-started.md")
    assert len(blocks) >= 5
    namespace = {}
    for block in blocks:
        block = block.replace('"/path/to/a/cache/folder"', "None")  # keep the suite's cache
        exec(compile(block, "getting-started.md", "exec"), namespace)
    assert namespace["sol"].result == namespace["jg"].RESULTS.successful
    assert namespace["batch"].xs.shape == (256, 64, 2)
    assert namespace["back"].shape == (2,)


def test_api_pages_cover_every_public_name():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    assert hooks.undocumented(DOCS) == []
    assert "frechet_mean" in hooks.public_names("jaxgeo.stats")
