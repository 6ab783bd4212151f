"""The former name of ``aotkernels.pytensor`` (mode "AOT"), kept so existing imports work."""

from aotkernels.pytensor import *  # noqa: F403
from aotkernels.pytensor import __all__  # noqa: F401
