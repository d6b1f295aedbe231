"""A self-hosted Discord music bot with its own Lavalink v4 client."""

__version__ = "0.1.0"
