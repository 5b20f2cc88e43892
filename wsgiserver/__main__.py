"""``python -m wsgiserver MODULE:APP [options]``."""

from .cli import main

raise SystemExit(main())
