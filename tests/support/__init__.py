"""Helpers shared by the test modules: contract checks and terminal/signal set-up."""
