"""The leaf layer: small helpers every other module may use, importing nothing of ours above
:mod:`redoxflow.errors`.

- :mod:`.options`: the ``Literal`` aliases of every enumerated option and their one validator;
- :mod:`.units`: voxel size and connectivity -> structuring element;
- :mod:`.atomic`: the one atomic writer (stores and files appear only when complete);
- :mod:`.provenance`: chunking-independent checksums of volumes;
- :mod:`.tables`: the one flattener of per-bubble tables into a pandas frame.
"""
