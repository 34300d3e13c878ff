"""matplotlib is optional (the ``plot`` extra); progress bars are tqdm's and stay silent when asked."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from implicitbias import _plotting, cli
from implicitbias._progress import progress_bar
from implicitbias.experiments import weightnorm


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
        weightnorm.plot({}, {}, str(tmp_path))


def test_cli_without_matplotlib_writes_the_data_only(monkeypatch, tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    calls = []

    def plot(tables, summary, out):
        raise AssertionError("plot must not be called without matplotlib")

    def summarize(tables, quick):
        calls.append((tables, quick))
        return {"summary": pd.DataFrame({"a": [1.0]})}

    fake = SimpleNamespace(NAME="weightnorm", SPECS=(), summarize=summarize, plot=plot)
    monkeypatch.setitem(cli.REGISTRY, "weightnorm", fake)
    assert cli.main(["reproduce", "weightnorm", "--out", str(tmp_path), "--no-progress"]) == 0
    assert calls == [({}, False)]
    captured = capsys.readouterr()
    assert "no figures" in captured.err and "implicitbias[plot]" in captured.err
    assert "weightnorm_summary.csv" in captured.out


def test_progress_bar_counts_and_can_be_silenced(capsys):
    with progress_bar(5, "work", enabled=False) as bar:
        bar.update(2)
        bar.update(3)
    assert bar.disable
    # enabled, but stderr is not a terminal here (captured): tqdm stays silent too
    with progress_bar(3, "work") as bar:
        bar.update(3)
    assert bar.disable
    assert capsys.readouterr().err == ""


def test_progress_bar_on_a_terminal_shows_done_total_rate_and_time_left(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    with progress_bar(4, "sweep") as bar:
        bar.update(2)
    text = term.getvalue()
    assert "sweep" in text and "2/4" in text
    assert "run/s" in text or "s/run" in text
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", text)  # [elapsed<remaining
