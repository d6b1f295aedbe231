"""Slash-command extensions: parse input, call the queue service, render the reply."""
