"""Readers for ``gencrystal db import``: one module per source format, each a
:class:`gencrystal.db.importing.SourceReader` built by ``_target_`` from
``conf/import_source/<format>.yaml``. A new format is one module here plus one YAML there."""
