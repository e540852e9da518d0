"""python -m azlin_cli: the same as azlin-storage."""

from .main import main

main()
