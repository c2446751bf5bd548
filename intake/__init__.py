"""The reference case-intake service: a tus endpoint, a small JSON API, local or S3 storage.

``jcdiag intake serve`` (:mod:`intake.server`) wires :mod:`intake.tus` (the upload
rules), :mod:`intake.storage` (where all state lives) and :mod:`intake.tokens`
(signed, scoped bearer tokens).  It imports only the readers it needs from
``collector`` (``bundle.read_header``, ``ids``, ``envelope`` keys), never the
gathering side.
"""
