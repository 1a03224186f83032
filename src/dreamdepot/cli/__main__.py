"""`python -m dreamdepot.cli`."""

from dreamdepot.cli import main

main()
