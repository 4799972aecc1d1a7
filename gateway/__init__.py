"""Hearth: a local-first smart-home interoperability gateway.

``import gateway`` stays light on purpose (no MQTT, HTTP, BLE or mDNS imports here):
the command line, the plugin SDK (:mod:`gateway.sdk`) and the tests import what they need.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hearth-gateway")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
