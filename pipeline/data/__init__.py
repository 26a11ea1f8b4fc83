"""The user's data: the file readers and the label rule (files), what `rnnpipe init` finds in a data set (detect),
the splits as tf.data datasets (splits), vocabularies and in-graph tokenization (text), and the batches a model
trains on (inputs). files and detect import no TensorFlow."""
