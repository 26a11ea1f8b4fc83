"""Constructor arguments shared by the cells: checks that name the bad value, and the nine weight arguments."""

import numbers

from keras import activations, constraints, initializers, regularizers


def check_units(units):
    if isinstance(units, bool) or not isinstance(units, numbers.Integral) or units <= 0:
        raise ValueError(f"`units` must be a positive integer, got units={units!r}.")
    return int(units)


def check_rate(name, rate):
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= rate < 1.0:
        raise ValueError(f"`{name}` must be a float in [0, 1), got {name}={rate!r}.")
    return float(rate)


def get_activation(name, identifier):
    if identifier is None:
        raise ValueError(f"`{name}` must be an activation, got {name}=None.")
    try:
        return activations.get(identifier)
    except (ValueError, TypeError) as error:
        raise ValueError(f"Unknown `{name}`: {name}={identifier!r}.") from error


# The initializer / regularizer / constraint arguments every cell takes, with the module that resolves and
# serializes each.
WEIGHT_ARGUMENTS = {
    "kernel_initializer": initializers,
    "recurrent_initializer": initializers,
    "bias_initializer": initializers,
    "kernel_regularizer": regularizers,
    "recurrent_regularizer": regularizers,
    "bias_regularizer": regularizers,
    "kernel_constraint": constraints,
    "recurrent_constraint": constraints,
    "bias_constraint": constraints,
}


def set_weight_arguments(cell, **arguments) -> None:
    for name, value in arguments.items():
        setattr(cell, name, WEIGHT_ARGUMENTS[name].get(value))


def weight_arguments_config(cell) -> dict:
    return {name: module.serialize(getattr(cell, name)) for name, module in WEIGHT_ARGUMENTS.items()}


def check_implementation(implementation):
    # Keras' cells take 1 or 2 (0 from configs of older releases) and ignore anything else silently.
    if isinstance(implementation, bool) or implementation not in (0, 1, 2):
        raise ValueError(f"`implementation` must be 0, 1 or 2, got implementation={implementation!r}.")
    return int(implementation)
