"""Fidelity tests of the fakes in the top-level ``peers`` package."""
