"""Local stand-ins for the bot's network peers (fake Discord, fake Lavalink), used by the tests."""
