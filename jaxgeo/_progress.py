"""Progress bars of long host-side loops (training, distance matrices)."""

import importlib.util
import sys


def progress_bar(total: int, initial: int, progress: bool | None, *, unit: str, desc: str):
    """A tqdm bar; `progress=None` shows it only when standard error is a terminal. In
    Jupyter it is a widget where ipywidgets is installed, else text (`tqdm.auto` would
    warn on import there, even for a bar that is not shown)."""
    if importlib.util.find_spec("ipywidgets") is None:
        from tqdm.std import tqdm
    else:
        from tqdm.auto import tqdm

    disable = (not sys.stderr.isatty()) if progress is None else not progress
    return tqdm(total=total, initial=initial, disable=disable, unit=unit, desc=desc)
