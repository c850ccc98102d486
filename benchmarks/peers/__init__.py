"""Peer implementations of the benchmark workloads (`benchmarks.problems`).

Each module exposes `NAME`, `unavailable() -> str | None` (why the peer cannot run, e.g.
not installed) and one function per workload it supports; a function returns rows
(dicts) with the raw outputs (lengths, end points, energies) and wall times, and the
runner (`python -m benchmarks`) computes every error against jaxgeo's references.
"""
