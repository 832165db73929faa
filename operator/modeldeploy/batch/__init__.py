"""BatchPrediction passes: plan Job, Indexed Job, status (docs/batch.md)."""
