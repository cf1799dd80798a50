"""The bottom layer: plain values and helpers every other layer uses (results, the swarm
config, the gate, atomic writes, bundled paths, the lock). Imports nothing of the package above it.
"""
