"""`python -m tick2trade.cli`: the `t2t` command line (the same as the installed `t2t`)."""

from tick2trade.cli import main

main()
