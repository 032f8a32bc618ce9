"""``python -m modelyard``: the command line."""

from modelyard.cli import main

main()
