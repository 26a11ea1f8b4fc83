"""Does the sentiment input pipeline keep up with training? Examples/s of the tf.data pipeline alone (raw text ->
tokenized, bucketed, padded batches) against the examples/s the training step consumes, on IMDB-sized text:
25,000 synthetic reviews of 230 words on average (IMDB itself cannot be downloaded here), the imdb_lstm config's
model. The first pass over the data fills tf.data's cache; both the first (tokenizing) and a cached pass are shown.

    python benchmarks/input_pipeline.py [--reviews 25000] [--train-steps 20]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from pipeline.config import load_config  # noqa: E402
from pipeline.data.inputs import sentiment_dataset  # noqa: E402
from pipeline.data.text import build_word_vocabulary  # noqa: E402
from pipeline.training.model import build_classifier  # noqa: E402

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "imdb_lstm.toml")


def synthetic_reviews(n, mean_words, seed=0):
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(30_000)])
    zipf = 1 / np.arange(1, words.size + 1)
    zipf /= zipf.sum()
    lengths = np.clip(rng.gamma(2.0, mean_words / 2.0, size=n).astype(int), 5, 2500)
    texts = [" ".join(rng.choice(words, size=k, p=zipf)) + ". <br /><br />The end!" for k in lengths]
    labels = rng.choice(["neg", "pos"], size=n).tolist()
    return texts, labels, float(lengths.mean())


def examples_per_second(dataset, limit=None):
    start, count = time.perf_counter(), 0
    for i, (_, labels) in enumerate(dataset):
        count += int(labels.shape[0])
        if limit and i + 1 >= limit:
            break
    return count / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviews", type=int, default=25_000)
    parser.add_argument("--mean-words", type=int, default=230)
    parser.add_argument("--train-steps", type=int, default=20)
    args = parser.parse_args()
    config = load_config(CONFIG, [])
    texts, labels, mean = synthetic_reviews(args.reviews, args.mean_words)
    raw = tf.data.Dataset.from_tensor_slices({"text": texts, "label": labels})
    vocab = build_word_vocabulary(raw.map(lambda x: x["text"]).batch(1024), config.tokenize.max_tokens,
                                  config.tokenize.standardize, config.tokenize.sequence_length)  # fmt: skip
    t = config.train
    dataset = sentiment_dataset(raw, vocab, ("neg", "pos"), t.batch_size, shuffle_buffer=t.shuffle_buffer,
                                seed=0, bucketing=t.bucketing)  # fmt: skip
    print(f"{args.reviews:,} reviews, {mean:.0f} words on average; batch {t.batch_size}, bucketing={t.bucketing}, "
          f"cpus={os.cpu_count()}, loadavg={os.getloadavg()[0]:.1f}")  # fmt: skip
    first = examples_per_second(dataset)
    cached = examples_per_second(dataset)

    model = build_classifier(config.model, vocab.size, 2, seed=0)
    model.compile(keras.optimizers.Adam(t.learning_rate, clipnorm=t.clipnorm),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
    batches = list(dataset.take(args.train_steps + 3))
    for ids, y in batches[:3]:  # trace / compile the shapes seen first
        model.train_on_batch(ids, y)
    start, count = time.perf_counter(), 0
    for ids, y in batches[3:]:
        model.train_on_batch(ids, y)
        count += int(y.shape[0])
    training = count / (time.perf_counter() - start)
    print(f"input pipeline, first pass (tokenizing): {first:>9,.0f} examples/s")
    print(f"input pipeline, cached pass:             {cached:>9,.0f} examples/s")
    print(f"training step consumes:                  {training:>9,.0f} examples/s")
    print(f"ratio input/training: first pass {first / training:.1f}x, cached {cached / training:.1f}x")


if __name__ == "__main__":
    main()
