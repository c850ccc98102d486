"""How the experiments' figures mark what a reader needs: the axes of a 2-D data or
latent space, the start and goal markers of `jg.plot.curve` in legends, and failed
geodesics drawn apart and named."""

from matplotlib.lines import Line2D

import jaxgeo as jg


# The end points `jg.plot.curve` marks, for a legend.
START_GOAL = [
    Line2D([], [], ls="", marker="o", mfc=colour, mec="k", ms=8, label=label)
    for colour, label in (("limegreen", "start"), ("gold", "goal"))
]
FAILED_STYLE = dict(color="tab:red", ls="--", lw=1.2)  # a curve whose solve failed


def plane_axes(
    ax, *, latent: bool = False, legend: bool = True, markers=START_GOAL, **legend_kwargs
) -> None:
    """Axis labels of a 2-D data space ($x_1$, $x_2$: the data's own coordinates) or,
    with `latent`, of a latent space ($z_1$, $z_2$), and a legend naming the start and
    goal `markers` beside the labelled artists."""
    name = "z" if latent else "x"
    suffix = " (latent)" if latent else ""
    ax.set(xlabel=f"${name}_1${suffix}", ylabel=f"${name}_2${suffix}")
    if legend:
        handles, _ = ax.get_legend_handles_labels()
        ax.legend(handles=handles + list(markers), **legend_kwargs)


def solved_curve(ax, sol, label: str | None, **style) -> None:
    """A geodesic solution's curve: in `style` (legend `label`) if it solved, else
    dashed red and named FAILED with its result."""
    if sol.result == jg.RESULTS.successful:
        jg.plot.curve(ax, sol.xs, label=label, **style)
    else:
        failed = f"{label or 'geodesic'} FAILED ({jg.result_name(sol.result)})"
        jg.plot.curve(ax, sol.xs, label=failed, **FAILED_STYLE)


def failures_entry(ax, solved, label: str) -> None:
    """A legend entry, in `FAILED_STYLE`, counting the curves whose solve failed (of the
    booleans `solved`); none if all solved."""
    failed = int((~solved).sum())
    if failed:
        ax.plot([], [], **FAILED_STYLE, label=f"{label} FAILED ({failed})")
