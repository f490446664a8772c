"""Writes of experiments, one module per sub-domain (import the module you need; nothing is re-exported):

- ``lifecycle``: create, update, start, pause, stop, copy, delete, each with ``actor=`` and its audit row;
- ``promotion``: ``experiment_promote``, a variant's prompt version to production and the experiment stopped;
- ``resolve``: ``prompt_resolve``, which prompt a user gets now (records the exposure);
- ``exposures``: the exposure buffer and its bulk inserts;
- ``results``: results ingestion and its bulk insert.
"""
