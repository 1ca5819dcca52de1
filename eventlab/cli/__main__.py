"""``python -m eventlab.cli``: the ``eventlab`` command."""

from . import main

main()
