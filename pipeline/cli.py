def main():  # placeholder until the CLI lands
    raise SystemExit("driftguard: not built yet")
