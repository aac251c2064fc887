"""``composer site``: a static run browser written from the runs repository.

One job per module: ``view`` (a record's files as a typed ``RunView``), ``html``
(escaping and the page frame), ``highlight`` (syntax highlighting, Pygments when
installed), ``listing`` (the run list), ``runpage`` (one page per run),
``diffpage`` (``composer diff`` of two runs side by side) and ``build`` (which
pages, and writing them in place of an earlier site).
"""
