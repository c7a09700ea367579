"""The NYC flights 2013 example: regression of the arrival delay, monthly Parquet spans."""
