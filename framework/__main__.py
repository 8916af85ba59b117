"""``python -m tlf``: the command line."""
from tlf.cli import main

if __name__ == "__main__":
    main()
