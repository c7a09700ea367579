"""The ``driftguard`` command line: ``main.py`` is the click group; the commands live in one
module per concern here, or beside their product (``serving/cli.py``, ``monitoring/cli.py``,
``components/*/cli.py``)."""
