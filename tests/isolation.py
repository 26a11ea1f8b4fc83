"""Python source that makes a fresh interpreter unable to import our packages (or keras), as inside TF Serving.

`None` in sys.modules makes `import` fail while importlib.util.find_spec (which TensorFlow calls for keras) reports
the module as absent; a meta-path finder that raises would break `import tensorflow` itself.
"""

BLOCK_OUR_CODE = """
import sys
for name in ("custom_layers", "pipeline", "keras"):
    sys.modules[name] = None
for name in ("custom_layers", "pipeline", "keras"):
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        raise SystemExit(f"{name} is importable: the block does not work")
"""
