"""Benchmarks that print figures (``make bench``; method and results in bench/README.md).
"""

if __name__ != "tick2trade.bench":
    # This folder is a subpackage of the installed tick2trade (pyproject.toml maps it);
    # imported as a top-level "bench" it would be a second copy of every module in it.
    raise ImportError(f"import tick2trade.bench, not {__name__} (see docs/design.md)")
