"""Example projects shipped with driftguard (`driftguard init DIR --example NAME`)."""
