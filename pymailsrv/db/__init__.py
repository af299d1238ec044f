"""pymailsrv.db: the PostfixAdmin 3.3 database (the only package that imports SQLAlchemy/alembic).

* ``base``: the Directory interface (what SMTP, delivery and auth ask).
* ``models``: the PostfixAdmin tables per dialect (MySQL/MariaDB, SQLite, PostgreSQL).
* ``engine``: the async engine for ``database_url``; database outages -> TemporaryFailure.
* ``schema`` + ``migrations/``: ``db upgrade`` (create, or recognise an existing PostfixAdmin
  database and leave it untouched), ``create_schema`` and ``seed`` for tests.
* ``rules``: POSTFIXADMIN-SCHEMA §4 lookup rules, once, over a row ``source.Source``, read per
  operation through a ``lookup.Lookup`` (every row a recipient can need in one request) and the
  ``cache`` (directory_cache_ttl; dropped when PostfixAdmin's log table moves); ``directory``
  (SqlDirectory: ``statements`` built once, run by ``drivers`` on the driver's own pool, requests
  merged by ``batch`` while every connection is busy) and ``memory`` (MemoryDirectory, for other
  packages' tests) implement Directory.
* ``manage``: admin operations writing rows as PostfixAdmin does; ``admin``: the CLI glue.
* ``sql_table``: Postfix ``mysql:/pgsql:/sqlite:`` lookup tables for the policy layer.
"""
