"""The runs repository, one job per module.

``names`` (run ids, tags, temporary names), ``git`` (the one git runner),
``manifest`` (the outputs manifest of a record), ``guard`` (what may enter a
record), ``read`` (listing and lookup from commits) and ``repo`` (``RunsRepo``:
validate, lock, place, commit, tag). ``composer.record`` re-exports the public names.
"""
