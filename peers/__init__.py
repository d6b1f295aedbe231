"""Local stand-ins for the bot's network peers, shared by the tests and the benchmarks.

``fake_discord`` and ``fake_lavalink`` are the fake Discord and the fake Lavalink v4 node,
``discord_payloads`` and ``tracks`` what they send, ``catalogue`` the tracks they serve,
``voice`` Discord's voice server as Lavalink meets it, ``process`` and ``fleet`` the real
``python -m bot`` as a child process and many guilds playing at once. Never part of the bot:
the package is not installed (pyproject's ``packages.find``) nor copied into the image.
"""
