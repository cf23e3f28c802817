"""The wire messages as TypedDicts (generated from the daemon's ``rpc.discover``), for annotations:

    from ci_sidecar_client.types import TestRun
"""

from ._methods import *  # noqa: F401,F403 - the generated module's __all__ is the public list
from ._methods import __all__ as _generated

__all__ = [name for name in _generated if name != "Methods"]
