"""factory: turn a teacher model into verified reasoning traces and a cheaper student.

Importing this package is cheap on purpose: heavy libraries (torch, transformers, duckdb,
math-verify) are imported where they are used, so `factory --help` stays instant.
"""

__version__ = "0.1.0"
