"""The pytest adapter: hook implementations, items, the session that runs a swarm under
pytest, fixtures, the cassette and real-harness options, xdist, and the contract suite.
"""
