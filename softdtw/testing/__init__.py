"""Test oracles and Hypothesis strategies shared by the test suite and ``python -m softdtw.check``.

The oracles share no code with the realizations: they enumerate alignment paths or run the
textbook recursion cell by cell.
"""
