"""Constructor-argument checks shared by the cells: fail early, name the bad value."""

import numbers

from keras import activations


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
