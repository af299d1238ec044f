from pymailsrv.cli import main

raise SystemExit(main())
