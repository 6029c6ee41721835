import sys

if sys.argv[1:2] == ["ui"]:
    # The payload's menu: its first frame before the imports below (bootmenu/firstframe.py).
    from bootmenu import firstframe

    firstframe.draw(sys.argv[2:])

from bootmenu.cli import main

sys.exit(main())
