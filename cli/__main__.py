"""``python -m driftguard.cli ...``: the same as the ``driftguard`` console script."""
from driftguard.cli.main import main

main(prog_name="driftguard")
