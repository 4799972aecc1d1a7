"""A mock BlueZ on a private D-Bus, for running bleak's real BlueZ backend without a radio (see fixtures.py)."""
