"""The embedded default database: Django's SQLite backend with its writers queued (see :mod:`pki.sqlite.base`)."""
