"""Riemannian-manifold samplers with any jaxgeo metric: `jaxgeo.sampling`.

[`jaxgeo.sampling.mmala`][] is manifold MALA, a blackjax `SamplingAlgorithm`;
[`jaxgeo.sampling.rmhmc`][] adapts a metric to blackjax's RMHMC
(`mass_matrix_fn = metric.matrix`); [`jaxgeo.sampling.step_size_warmup`][] tunes a step
size by dual averaging (blackjax's) toward a target acceptance rate, and
[`jaxgeo.sampling.sample_chain`][] runs a chain in one `lax.scan`.
"""

from ._mmala import mmala as mmala, MMALAInfo as MMALAInfo, MMALAState as MMALAState
from ._rmhmc import rmhmc as rmhmc
from ._warmup import (
    sample_chain as sample_chain,
    step_size_warmup as step_size_warmup,
    WarmupResult as WarmupResult,
)
