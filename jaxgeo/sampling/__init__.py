"""Riemannian-manifold samplers with any jaxgeo metric: `jaxgeo.sampling`."""

from .._sampling import (
    mmala as mmala,
    mmala_warmup as mmala_warmup,
    MMALAInfo as MMALAInfo,
    MMALAState as MMALAState,
    rmhmc as rmhmc,
    sample_chain as sample_chain,
    WarmupResult as WarmupResult,
)
