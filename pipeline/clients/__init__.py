"""What talks to an export, without Keras: the SavedModel's signatures (saved_model), the LiteRT reference client
(litert_client, which runs without this package), and the `predict` and `generate` clients."""
