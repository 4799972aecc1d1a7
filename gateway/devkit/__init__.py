"""The appliance maker's kit: ``hearth plugin new`` (scaffold), ``hearth plugin check`` (conformance) and
the pytest plugin ``gateway.testing``. Nothing here is imported by ``hearth run``."""
