"""Everything the function does with Postgres, behind the ``LoginStore`` port.

* ``credentials``: where connection parameters come from (a URL, a rotating secret, IAM tokens);
* ``connection``: opening a connection (TLS, socket options) and ending a server process;
* ``transaction``: the one transaction scope every write uses, its timeouts bound to the
  invocation's deadline;
* ``schema``: the tables (created if missing) and the statements that write them;
* ``ledger``: a batch's message ids into the exactly-once ledger;
* ``copy_rows``: rows as ``COPY`` text;
* ``isolation``: which rows of a refused batch Postgres refuses;
* ``store``: ``PostgresLoginStore``, the write and the ledger's prune.
"""
