"""Developer and operator tools for login-etl: local stack, sample data, local runs, CLI.

Not part of the Lambda artifact (the SAM build ships ``login_etl`` only).
"""
