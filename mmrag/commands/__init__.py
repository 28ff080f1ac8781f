"""The command line: every `mmrag` command, in one place."""
