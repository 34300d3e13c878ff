"""The compiled core carries the package version; a stale core is refused with a helpful message."""

from __future__ import annotations

from types import ModuleType

import pytest

import implicitbias
from implicitbias import _native
from implicitbias._native import check_core_version, core


def test_loaded_core_has_the_package_version():
    assert core.__version__ == implicitbias.__version__
    assert _native._baseline.__version__ == implicitbias.__version__
    assert implicitbias.build_info()["version"] == implicitbias.__version__


def _fake_core(version: str | None) -> ModuleType:
    fake = ModuleType("implicitbias._core_fake")
    fake.__file__ = "/somewhere/implicitbias/_core_fake.cpython-311-x86_64-linux-gnu.so"
    if version is not None:
        fake.__version__ = version
    return fake


def test_matching_version_passes():
    check_core_version(_fake_core("1.2.3"), "1.2.3")


@pytest.mark.parametrize(("version", "said"), [("1.2.2", "built from implicitbias 1.2.2"),
                                              ("1.2.3rc1", "built from implicitbias 1.2.3rc1"),
                                              (None, "no __version__")])
def test_stale_core_raises_with_file_and_remedy(version, said):
    with pytest.raises(ImportError) as info:
        check_core_version(_fake_core(version), "1.2.3")
    msg = str(info.value)
    assert "stale compiled core" in msg
    assert "/somewhere/implicitbias/_core_fake.cpython-311-x86_64-linux-gnu.so" in msg
    assert said in msg
    assert "the Python package is implicitbias 1.2.3." in msg
    assert "pip install ." in msg


def test_non_string_version_counts_as_stale():
    fake = _fake_core(None)
    fake.__version__ = 123  # type: ignore[attr-defined]
    with pytest.raises(ImportError, match="stale compiled core"):
        check_core_version(fake, "123")
