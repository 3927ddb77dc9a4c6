from cotal_tui.cli import main

raise SystemExit(main())
