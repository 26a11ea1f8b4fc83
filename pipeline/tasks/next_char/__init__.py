"""The next_char task (character language model): task (data, model, metrics), serving (the SavedModel's
generation signatures), litert (its LiteRT signatures). Its recipe is pipeline.recipes.NEXT_CHAR_DEFAULTS."""
