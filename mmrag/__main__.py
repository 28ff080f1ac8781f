"""`python -m mmrag`: the `mmrag` command."""

from mmrag.commands.app import main

if __name__ == "__main__":
    main()
