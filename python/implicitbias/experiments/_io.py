"""Writing an experiment's data: CSV tables and a JSON summary (shared by every reproduction)."""

from __future__ import annotations

import csv
import json
import os
from typing import Any


def write_csv(path: str, rows: list[dict[str, Any]]) -> str:
    """Rows of dicts as CSV; the columns are the union of the keys, in first-seen order."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_outputs(name: str, out: str, tables: dict[str, list[dict[str, Any]]], summary: dict[str, Any]) -> list[str]:
    """``{name}_{table}.csv`` for each table and ``{name}_summary.json`` under ``out``; returns the paths."""
    os.makedirs(out, exist_ok=True)
    paths = [write_csv(os.path.join(out, f"{name}_{key}.csv"), rows) for key, rows in tables.items()]
    path = os.path.join(out, f"{name}_summary.json")
    with open(path, "w") as fh:
        json.dump(summary, fh, indent=1, default=float)
    return paths + [path]
