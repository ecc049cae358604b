"""`python -m control ...`: the same CLI as the installed `control` script."""

from control.cli.app import main

main()
