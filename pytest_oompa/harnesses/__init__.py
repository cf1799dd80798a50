"""The agent CLIs as data: the registry (one entry per CLI), their output parsers, and where
the real CLIs are installed. Imports only ``core``.
"""
