"""`python -m pyserver --help`: the scoring server (same options as `control serve`)."""

from pyserver.cli import main

if __name__ == "__main__":
    main()
