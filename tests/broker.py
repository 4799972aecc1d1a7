"""A real Mosquitto for tests: the maker's kit's own (:mod:`gateway.devkit.mosquitto`), re-exported under the
name the gateway's tests have always imported."""

from gateway.devkit.mosquitto import (
    HOST,
    Mosquitto,
    MosquittoNotFoundError,
    find_mosquitto,
    free_port,
    port_accepts,
)

__all__ = ["HOST", "Mosquitto", "MosquittoNotFoundError", "find_mosquitto", "free_port", "port_accepts"]
