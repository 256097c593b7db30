"""``python -m flexledger`` is the ``flexledger`` command."""

from flexledger.cli import main

if __name__ == "__main__":
    main()
