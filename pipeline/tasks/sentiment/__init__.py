"""The sentiment task (text classification): task (data, model, metrics, serving), litert (its LiteRT signature).
Its recipe is pipeline.recipes.SENTIMENT_DEFAULTS."""
