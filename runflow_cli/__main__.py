from runflow_cli.cli.console_script import run

run()
