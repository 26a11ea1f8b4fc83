"""rnnpipe: text pipeline (tokenize, train, evaluate, export, predict, generate) over custom_layers' RNNs."""

from importlib import metadata

try:
    __version__ = metadata.version("rnnpipe")
except metadata.PackageNotFoundError:  # running from a source tree that was not pip-installed
    __version__ = "0.0.0+source"
