"""matplotlib is optional (the ``plot`` extra)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from implicitbias import cli
from implicitbias.experiments import _plotting, weightnorm


def test_core_api_does_not_import_matplotlib():
    code = textwrap.dedent("""
        import sys
        import implicitbias
        from implicitbias import data, diagonal, factorization, hessian, reference, steepest, cli, experiments
        assert "matplotlib" not in sys.modules, sorted(m for m in sys.modules if m.startswith("matplotlib"))
    """)
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plot_without_matplotlib_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert not _plotting.available()
    with pytest.raises(ImportError, match=r"pip install 'implicitbias\[plot\]'"):
        weightnorm.plot({"settings": weightnorm.settings(quick=True)}, str(tmp_path))


def test_cli_without_matplotlib_writes_the_data_only(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    calls = []

    def plot(table, out):
        raise AssertionError("plot must not be called without matplotlib")

    fake = SimpleNamespace(run=lambda **kw: calls.append(kw) or {}, write=lambda table, out: [f"{out}/data.csv"],
                           plot=plot)
    monkeypatch.setitem(cli.REGISTRY, "weightnorm", fake)
    assert cli.main(["reproduce", "weightnorm", "--out", str(tmp_path), "--no-progress"]) == 0
    assert calls == [{"quick": False, "progress": False, "num_threads": None}]
    captured = capsys.readouterr()
    assert "no figures" in captured.err and "implicitbias[plot]" in captured.err
    assert "data.csv" in captured.out
