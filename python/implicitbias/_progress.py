"""Progress bars for long work: tqdm on stderr (runs done / total, rate, time left)."""

from __future__ import annotations

from tqdm import tqdm


def progress_bar(total: int, desc: str, enabled: bool = True, unit: str = "run") -> tqdm:
    """A tqdm bar over ``total`` units; ``enabled=False`` silences it.

    When enabled it draws only if stderr is a terminal (tqdm's ``disable=None``), so
    redirected output and logs stay free of carriage-return noise.
    """
    return tqdm(total=total, desc=desc, unit=unit, disable=None if enabled else True, dynamic_ncols=True)
