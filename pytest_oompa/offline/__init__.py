"""Everything that lets a swarm run with no model and no network: the loopback fake model
API, the fake harnesses' scenarios, and harness and wire cassettes.
"""
