"""Type stubs: the AVX2 / AVX-512 build of the core has the API of ``_core``."""

from ._core import *  # noqa: F403
from ._core import isa as isa
