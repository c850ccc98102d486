"""Matplotlib figures: score fields, densities, metric ellipses, magnification factors,
curves, energy landscapes, and GIF animations of optimisation histories."""

from ._plot import (
    animate as animate,
    animate_curves as animate_curves,
    curve as curve,
    density as density,
    energy_landscape as energy_landscape,
    linear_map_circle as linear_map_circle,
    magnification_factor as magnification_factor,
    metric_ellipses as metric_ellipses,
    score_field as score_field,
)
