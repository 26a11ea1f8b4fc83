"""The run directory and what it records: its lock and resolved config (rundir), when a stage's results are up to
date (freshness), atomic writes (artifacts), the checks before any work (preflight), and which process of a
multi-worker training writes it (cluster). TensorFlow-free."""
