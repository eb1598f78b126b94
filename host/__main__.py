"""`python -m tick2trade.host`: the `t2t` command line (the same as the installed `t2t`)."""

from tick2trade.host.cli import main

main()
