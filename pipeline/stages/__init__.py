"""The pipeline's stages, each a library function the command line calls: init, tokenize, train, evaluate, export."""
