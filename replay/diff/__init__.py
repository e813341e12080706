"""Where two runs of a match first go apart: states, calls and outcomes."""
