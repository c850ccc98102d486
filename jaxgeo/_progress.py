"""Progress bars of long host-side loops (training, distance matrices)."""

import sys


def progress_bar(total: int, initial: int, progress: bool | None, *, unit: str, desc: str):
    """A tqdm bar; `progress=None` shows it only when standard error is a terminal."""
    from tqdm.auto import tqdm

    disable = (not sys.stderr.isatty()) if progress is None else not progress
    return tqdm(total=total, initial=initial, disable=disable, unit=unit, desc=desc)
