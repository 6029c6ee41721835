import sys

if sys.argv[1:2] == ["ui"]:
    # The payload's menu: its first frame before the imports below (bootmenu/firstframe.py).
    from bootmenu import firstframe

    firstframe.draw(sys.argv[2:])

# In the payload: the dataclass methods compiled at build time, before any class is made (bootmenu/dataclass_code.py).
from bootmenu import dataclass_code

dataclass_code.install()

from bootmenu.cli import main  # noqa: E402 (after the hook above)

sys.exit(main())
