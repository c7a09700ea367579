"""The taxi example: a binary classifier of big tippers, quarterly CSV spans."""
