"""``python -m avrec`` is the ``avrec`` command."""

from .cli import main

main()
