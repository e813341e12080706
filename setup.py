"""The one compiled part: ``recorder.format._rows``, a loop's message rows for the chunk writer (see its source).

Everything else is in pyproject.toml. The extension is optional: where it cannot be built (no C compiler), the
install goes on without it and the writer makes the same rows in Python, the same bytes, about 30% slower.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("recorder.format._rows", ["recorder/format/_rows.c"], optional=True)])
