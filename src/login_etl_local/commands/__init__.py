"""``login-etl stack`` and ``login-etl run``: imported by the CLI only when they are named."""
