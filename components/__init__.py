"""driftguard components: pure drift statistics and thin TFX shells over them."""
