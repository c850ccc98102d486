"""MkDocs hooks of the documentation site (`mkdocs.yml`, `hooks:`).

- The example notebooks of `notebooks/` are rendered under `notebooks/` of the site, not
  executed (the tests execute them). Where `JAXGEO_NOTEBOOK_OUTPUTS` names the folder that
  `tests/test_notebooks.py` wrote the executed notebooks to (under its `notebooks/`),
  those are rendered instead, with their outputs and figures (as `.ci/run` does).
- MathJax is served from the site itself (from the `jupyter-server-mathjax` package), so
  equations render without a network.
- The API coverage check: every public name of every public namespace of `jaxgeo` must
  have a `::: jaxgeo.<namespace>.<name>` block on its API page, or the build fails.

MkDocs is imported inside the hooks, so that the tests can import the check without it.
"""

import importlib
import os
import re
import types
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
NAMESPACES = {
    "jaxgeo": "api/jaxgeo.md",
    "jaxgeo.stats": "api/stats.md",
    "jaxgeo.families": "api/families.md",
    "jaxgeo.nn": "api/nn.md",
    "jaxgeo.train": "api/train.md",
    "jaxgeo.sampling": "api/sampling.md",
    "jaxgeo.scores": "api/scores.md",
    "jaxgeo.data": "api/data.md",
    "jaxgeo.plot": "api/plot.md",
}
DIRECTIVE = re.compile(r"^:::\s+([\w.]+)\s*$", re.MULTILINE)


def public_names(namespace: str) -> set[str]:
    """The names a user reaches as `namespace.<name>`: not private, not a module."""
    module = importlib.import_module(namespace)
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }


def undocumented(docs_dir: Path) -> list[str]:
    """Public names with no `:::` block on their namespace's API page."""
    missing = []
    for namespace, page in NAMESPACES.items():
        documented = set(DIRECTIVE.findall((docs_dir / page).read_text()))
        missing += sorted(
            f"{namespace}.{name}  (on {page})"
            for name in public_names(namespace)
            if f"{namespace}.{name}" not in documented
        )
    return missing


def on_pre_build(config, **kwargs):
    from mkdocs.exceptions import PluginError

    missing = undocumented(Path(config.docs_dir))
    if missing:
        raise PluginError("public names without API documentation:\n  " + "\n  ".join(missing))


def on_files(files, config, **kwargs):
    import jupyter_server_mathjax
    from mkdocs.structure.files import File

    executed = os.environ.get("JAXGEO_NOTEBOOK_OUTPUTS")
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        path = notebook.relative_to(ROOT).as_posix()
        root = executed if executed and (Path(executed) / path).is_file() else ROOT
        files.append(File(path, str(root), config.site_dir, config.use_directory_urls))
    mathjax = Path(jupyter_server_mathjax.__file__).parent / "static"
    for path in sorted(p for p in mathjax.rglob("*") if p.is_file()):
        uri = f"mathjax/{path.relative_to(mathjax).as_posix()}"
        files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


on_files.mkdocs_priority = 100  # before mkdocs-jupyter converts the notebooks
