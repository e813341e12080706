"""The in-process match runtime."""
