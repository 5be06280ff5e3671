"""``python -m fishtrack`` runs the command-line interface."""

from fishtrack.cli import main

main()
