"""login-etl: SQS login events -> masked rows in Postgres, as an AWS Lambda function."""
