"""Execute every notebook so it never rots."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient


NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [
        o for cell in nb.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert not errors
    # No warnings printed on the rendered pages (stderr streams, e.g. a library's
    # import-time warning).
    stderr = [
        "".join(o.get("text", ""))
        for cell in nb.cells
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == "stderr"
    ]
    assert not [text for text in stderr if "Warning" in text], stderr
    # The documentation site renders the executed notebooks from here (docs/hooks.py).
    if outputs := os.environ.get("JAXGEO_NOTEBOOK_OUTPUTS"):
        (Path(outputs) / "notebooks").mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, Path(outputs) / "notebooks" / path.name)


def test_notebooks_found():
    assert NOTEBOOKS, "no notebooks found"
