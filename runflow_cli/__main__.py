from runflow_cli.cli import main

main()
