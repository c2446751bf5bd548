"""The one compiled part of jcdiag: ``collector._logscan`` (see collector/_logscan.c).

Optional: where no C compiler is at hand the install goes on without it and the log
statistics build the same table in Python (collector.health.LogStats._python_table).
Everything else about the package is in pyproject.toml.
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("collector._logscan", ["collector/_logscan.c"], optional=True),
                   Extension("collector._literals", ["collector/_literals.c"], optional=True)])
