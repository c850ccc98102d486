"""Riemannian-manifold samplers with any jaxgeo metric: `jaxgeo.sampling`."""

from .._sampling import (
    mmala as mmala,
    MMALAInfo as MMALAInfo,
    MMALAState as MMALAState,
    rmhmc as rmhmc,
    sample_chain as sample_chain,
    step_size_warmup as step_size_warmup,
    WarmupResult as WarmupResult,
)
