from yume_env.cli import main

raise SystemExit(main())
