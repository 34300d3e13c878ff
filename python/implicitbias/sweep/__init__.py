"""Parameter sweeps: a declarative grid, a crash-safe embedded store, a Dask backend, phase diagrams.

* :func:`run` -- run a spec (a dict or a TOML file; :func:`check` validates it)
  into a store directory, locally or on a Dask cluster; resumes after a crash;
* :func:`load` -- the store's table as a pandas DataFrame (one row per run);
* :func:`to_csv` / :func:`read_csv` -- the table as CSV and back;
* :func:`plot_phase` -- a heatmap of a table's value over two of its columns.

The spec's keys, the store's format, resume semantics and running on a cluster
(Dask, SLURM through dask-jobqueue) are described in docs/sweeps.md. The store
needs the ``sweep`` extra (pandas, pyarrow), the Dask backend the ``dask`` extra.
"""

from ._plot import phase_table, plot_phase
from ._runner import BACKENDS, compute_chunk, run
from ._spec import Spec, SpecError, check, read_toml
from ._store import TIMING_COLUMNS, StoreError, load, read_csv, read_meta, to_csv

__all__ = ["BACKENDS", "TIMING_COLUMNS", "Spec", "SpecError", "StoreError", "check", "compute_chunk", "load",
           "phase_table", "plot_phase", "read_csv", "read_meta", "read_toml", "run", "to_csv"]
