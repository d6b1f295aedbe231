"""Benchmarks of the bundled Lavalink client (see bench/README.md); not shipped with the bot."""
