"""Memory growth over many calls of each family: RSS and live Python heap (tests/test_memory.py's calls).

Usage: PYTHONPATH=python python tools/memory_growth.py [N_CALLS=5000] [family ...]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_memory import WORKLOADS, growth


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    families = sys.argv[2:] or sorted(WORKLOADS)
    for family in families:
        t = time.perf_counter()
        rss, heap = growth(WORKLOADS[family], n)
        print(f"{family:18s} {n} calls: RSS {rss / 1024:+8.0f} KiB, Python heap {heap / 1024:+8.1f} KiB "
              f"({time.perf_counter() - t:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
