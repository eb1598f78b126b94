"""`python -m host`: the `t2t` command line (the same as the installed `t2t`)."""

from host.cli import main

main()
