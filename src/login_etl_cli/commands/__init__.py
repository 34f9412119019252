"""The subcommands of ``login-etl``, one module per concern."""
