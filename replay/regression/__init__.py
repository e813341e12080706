"""Recordings as regression tests: expectations, the pytest plugin, run-all and bisect."""
