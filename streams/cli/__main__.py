"""`python -m interest_stream.streams.cli` runs the command line (the worker processes that
tests and benchmarks start use it)."""

from interest_stream.streams.cli import main

main()
