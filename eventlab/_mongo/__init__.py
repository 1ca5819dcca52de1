"""The MongoDB backend: connection, schema and migrations, positions, the writer and
readers, the log, the event store, checkpoints, snapshots, read models, the outbox store,
repositories, units of work, the one transaction policy, crash liveness and DCB storage.

May import: ``_core``, ``ports`` and the services it implements (``_follow``, ``_dcb``);
never ``memory``, ``workbench`` or ``cli``.
"""
