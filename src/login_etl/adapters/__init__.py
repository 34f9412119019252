"""I/O adapters behind the interfaces in ``login_etl.ports``: Postgres, KMS, SQS, config stores."""
