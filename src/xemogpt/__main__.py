from xemogpt.cli import main

raise SystemExit(main())
