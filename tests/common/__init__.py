"""Helpers shared by the tests: hypothesis strategies, slow reference implementations, paths, handlers."""
