"""Scene profiles shipped with the gateway (TOML, pure data). Installed as ``gateway.profiles``."""
