"""The sandbox: stands in for the exchanges, speaking their real REST wire formats.

Each simulated venue is served under ``/{venue}/`` followed by that venue's own paths, fed by
real recorded payloads (see :mod:`exgate.sandbox.data`) and moved by a seeded random walk
(:mod:`exgate.sandbox.sim`).
"""
