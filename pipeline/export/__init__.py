"""Export formats beyond the SavedModel a task's serving module makes: LiteRT conversion (litert) and TF Serving's
warm-up records (warmup)."""
