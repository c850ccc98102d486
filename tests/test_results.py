"""The `RESULTS` messages name real causes and knobs that exist, and every result has a
short name (`jaxgeo.result_name`)."""

import dataclasses
import inspect
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgeo as jg


R = jg.RESULTS
NAMESPACES = (jg, jg.stats, jg.families)
MESSAGES = {name: R[item] for name, item in R._name_to_item.items()}
# A knob as the messages write it: `callable(keyword=...)`.
KNOB = re.compile(r"\b([A-Za-z_]\w*)\((\w+)=\.\.\.\)")
# Any call-like mention, `name(`, and any `Class.attribute`.
CALL = re.compile(r"\b([A-Za-z_]\w*)\(")
ATTRIBUTE = re.compile(r"\b([A-Z]\w*)\.([a-z_]\w*)\b")


def _public(name: str):
    for namespace in NAMESPACES:
        if hasattr(namespace, name):
            return getattr(namespace, name)
    raise AssertionError(f"{name} is not a public name of jaxgeo, jaxgeo.stats or families")


def test_every_knob_a_message_names_is_a_parameter_of_its_callable():
    knobs = 0
    for name, message in MESSAGES.items():
        for callable_name, keyword in KNOB.findall(message):
            parameters = inspect.signature(_public(callable_name)).parameters
            assert keyword in parameters, (name, f"{callable_name}({keyword}=...)")
            knobs += 1
    assert knobs >= 25, knobs


def test_every_callable_and_attribute_a_message_names_exists():
    for message in MESSAGES.values():
        for callable_name in CALL.findall(message):
            assert callable(_public(callable_name)), callable_name
        for class_name, attribute in ATTRIBUTE.findall(message):
            owner = _public(class_name)
            fields = (
                {field.name for field in dataclasses.fields(owner)}
                if dataclasses.is_dataclass(owner)
                else set()
            )
            assert hasattr(owner, attribute) or attribute in fields, f"{class_name}.{attribute}"


@pytest.mark.parametrize(
    "stale",
    [
        "secant",  # a segment rule that distance, log_map, ... do not take
        "root-find",  # optimistix's wording for a budget that ran out
        "score and the damping",  # Stein-only advice, shown for every metric
        "diffeqsolve",
        "linear_solve",
        "GMRES",
        "Diffrax",
    ],
)
def test_no_message_points_to_a_knob_users_do_not_have(stale):
    for name, message in MESSAGES.items():
        assert stale not in message, name


def test_every_failure_has_a_message():
    for name, message in MESSAGES.items():
        assert (message == "") == (name == "successful"), name


def test_result_name_of_one_and_of_a_batch():
    assert jg.result_name(R.successful) == "successful"
    assert jg.result_name(R.unresolved_curve) == "unresolved_curve"
    batch = jax.vmap(jax.vmap(lambda p: R.where(p, R.singular_metric, R.successful)))(
        jnp.array([[True, False], [False, False]])
    )
    np.testing.assert_array_equal(
        jg.result_name(batch), [["singular_metric", "successful"], ["successful"] * 2]
    )
    with pytest.raises(TypeError, match="RESULTS"):
        jg.result_name(0)
    with pytest.raises(ValueError, match="traced"):
        jax.jit(lambda p: jg.result_name(R.where(p, R.successful, R.nonfinite_energy)))(True)
