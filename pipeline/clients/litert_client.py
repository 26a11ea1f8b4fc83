"""A reference client for the LiteRT export (`pipeline.export.litert`): the .tflite run by the LiteRT interpreter, with
tokenization and sampling written out in plain Python, exactly as training tokenized and as the SavedModel samples.

It imports only the standard library, numpy and `ai_edge_litert` (the `litert` extra): no TensorFlow, no Keras and
nothing else of rnnpipe, so that it runs where the .tflite runs and can be read, or copied, as the specification of
what a device has to do around the model. The export folder it reads:

    model.tflite      built-in LiteRT ops only
    vocabulary.json   {"level", "tokens" (index = id), "standardize", "sequence_length", "ngrams" (sub-words)}
    litert.json       task, class names, tokenization rules, signatures (inputs and outputs), the state layout

Tokenization (pipeline.data.text, which runs TensorFlow string ops):
  1. Bytes that are not valid UTF-8 become U+FFFD, one per maximal invalid subpart (Python's errors="replace").
  2. word level, standardize "lower*": the text ends at its first U+0000 (TensorFlow's UTF-8 lowercasing stops
     there); each character is lowercased by the table in litert.json, and a capital sigma by Unicode's
     Final_Sigma rule over the cased / case-ignorable ranges in litert.json. Both come from TensorFlow's ICU
     data, so a device needs no Unicode library of its own (whose Unicode version may differ).
  3. word level, standardize "*strip_punctuation": "<br>", "<br/>", "<br />" (any [\\t\\n\\f\\r ] before the
     slash) become a space, then the ASCII punctuation in litert.json is removed.
  4. word level: split on runs of ASCII whitespace (space, \\t, \\n, \\v, \\f, \\r), keep the first
     `sequence_length` words, look each one up (unknown: id 1), right-pad a batch with 0 to its longest text
     (at least one column; 0 is masked).
     With sub-words ("subwords" in litert.json's tokenization): each word becomes [its id, the ids of its
     n-grams found in the vocabulary's "ngrams" (id = first_id + index), at most per_word of them, then 0s];
     its n-grams are those of word_start + (the word's first max_word_chars characters) + word_end with the
     given sizes, shortest first, left to right, counted in characters (code points). Padding words are all 0.
  5. char level: every character is looked up (unknown: id 0); ids decode back through the vocabulary, 0 as U+FFFD.

Generation (next_char): the prompt ("\\n" if empty) is read by the "read_prompt" signature, then each character is
sampled from logits / temperature with the out-of-vocabulary entry excluded, and fed back through "step" with the
state. With a seed, character t is drawn as TensorFlow's `tf.random.stateless_categorical(logits, 1,
seed=[seed, t])` draws it (Philox-4x32-10, reimplemented below), so the same seed gives the SavedModel's text.

Example:

>>> model = LiteRTModel("runs/mr/export/model/1/litert")
>>> model.predict(["a wonderful film"])[0]["label"]
'pos'
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

FORMAT = "rnnpipe-litert"
FORMAT_VERSION = 1
DESCRIPTION_FILE = "litert.json"
# The smallest temperature a draw divides by, as in the SavedModel (pipeline.tasks.next_char.serving.MIN_TEMPERATURE).
MIN_TEMPERATURE = 1e-30
# For an export whose litert.json does not say (pipeline.tasks.next_char.serving.DEFAULT_MAX_LENGTH).
DEFAULT_MAX_LENGTH = 4096

_ASCII_WHITESPACE = re.compile(r"[ \t\n\v\f\r]+")
_SIGMA = "\u03a3"


class LiteRTExportError(ValueError):
    """The folder is not a LiteRT export this client can read, or an argument is out of range."""


def clean_utf8(text: str | bytes) -> str:
    """`text` as training saw it: invalid UTF-8 replaced by U+FFFD (a str is taken as its UTF-8 bytes; a lone
    surrogate in it counts as invalid bytes, as it would if a client sent it)."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    return data.decode("utf-8", "replace")


class Tokenizer:
    """Text -> token ids (and back, for characters), exactly as `pipeline.data.text` does with TensorFlow ops.

    Args:
        level: "word" or "char".
        tokens: the vocabulary, index = id (word level: "" pads at 0, "[UNK]" at 1; char level: "[UNK]" at 0).
        standardize: word level: "none", "lower", "strip_punctuation" or "lower_and_strip_punctuation".
        sequence_length: word level: words kept per text.
        rules: the "tokenization" section of litert.json (lowercase table, punctuation, HTML-break pattern,
            sub-word settings).
        ngrams: word level with sub-words: the vocabulary's n-grams (id = rules["subwords"]["first_id"] + index).
    """

    def __init__(self, level: str, tokens: Sequence[str], standardize: str, sequence_length: int, rules: dict,
                 ngrams: Sequence[str] = ()):  # fmt: skip
        if level not in ("word", "char"):
            raise LiteRTExportError(f"level must be 'word' or 'char', got {level!r}")
        self.level = level
        self.tokens = tuple(tokens)
        self.standardize_mode = standardize
        self.sequence_length = int(sequence_length)
        self.oov_id = 1 if level == "word" else 0
        self.pad_id = 0
        self._ids = {token: i for i, token in enumerate(self.tokens) if i > self.oov_id}
        self._lower = standardize in ("lower", "lower_and_strip_punctuation")
        self._strip = standardize in ("strip_punctuation", "lower_and_strip_punctuation")
        if self._lower:
            self._lowercase = dict(rules["lowercase"])
            self._cased = _starts_and_ends(rules["final_sigma"]["cased"])
            self._case_ignorable = _starts_and_ends(rules["final_sigma"]["case_ignorable"])
        if self._strip:
            self._html_break = re.compile(rules["html_break"])
            self._punctuation = re.compile("[" + re.escape(rules["punctuation"]) + "]")
        self._subwords = rules.get("subwords") if level == "word" else None
        if self._subwords:
            first = int(self._subwords["first_id"])
            self._ngram_ids = {gram: first + i for i, gram in enumerate(ngrams)}

    def lower(self, text: str) -> str:
        text = text.split("\0", 1)[0]
        return "".join(
            self._final_sigma(text, i) if c == _SIGMA else self._lowercase.get(c, c) for i, c in enumerate(text)
        )

    def _final_sigma(self, text: str, i: int) -> str:
        """Unicode's Final_Sigma: a capital sigma preceded by a cased letter and not followed by one (skipping
        case-ignorable characters both ways) lowercases to "ς", otherwise to "σ"."""

        def cased_neighbour(indices):
            for j in indices:
                if not _in(self._case_ignorable, ord(text[j])):
                    return _in(self._cased, ord(text[j]))
            return False

        final = cased_neighbour(range(i - 1, -1, -1)) and not cased_neighbour(range(i + 1, len(text)))
        return "\u03c2" if final else "\u03c3"

    def standardize(self, text: str | bytes) -> str:
        text = clean_utf8(text)
        if self._lower:
            text = self.lower(text)
        if self._strip:
            text = self._punctuation.sub("", self._html_break.sub(" ", text))
        return text

    def words(self, text: str | bytes) -> list[str]:
        return [word for word in _ASCII_WHITESPACE.split(self.standardize(text)) if word]

    def encode_words(self, texts: Iterable[str | bytes]) -> np.ndarray:
        """[batch] texts -> [batch, 1 <= width <= sequence_length] int32 ids, right-padded with 0; with sub-words
        [batch, width, 1 + per_word]: per word its id, then its known n-grams' ids, then 0s."""
        rows = [[self._encode_word(w) for w in self.words(t)[: self.sequence_length]] for t in texts]
        width = 1 + self._subwords["per_word"] if self._subwords else None
        ids = np.zeros((len(rows), max([1] + [len(row) for row in rows])) + ((width,) if width else ()), np.int32)
        for i, row in enumerate(rows):
            for j, word in enumerate(row):
                if width:
                    ids[i, j, : len(word)] = word
                else:
                    ids[i, j] = word[0]
        return ids

    def _encode_word(self, word: str) -> list[int]:
        ids = [self._ids.get(word, self.oov_id)]
        if self._subwords:
            head = word[: self._subwords["max_word_chars"]]
            marked = self._subwords["word_start"] + head + self._subwords["word_end"]
            grams = (marked[i : i + n] for n in self._subwords["sizes"] for i in range(len(marked) - n + 1))
            known = [self._ngram_ids[gram] for gram in grams if gram in self._ngram_ids]
            ids += known[: self._subwords["per_word"]]
        return ids

    def encode_chars(self, text: str | bytes) -> list[int]:
        return [self._ids.get(c, self.oov_id) for c in clean_utf8(text)]

    def decode_chars(self, ids: Iterable[int]) -> str:
        return "".join("\ufffd" if i == 0 else self.tokens[i] for i in ids)


def _starts_and_ends(ranges) -> tuple[list[int], list[int]]:
    return [first for first, _ in ranges], [last for _, last in ranges]


def _in(ranges: tuple[list[int], list[int]], codepoint: int) -> bool:
    index = bisect.bisect_right(ranges[0], codepoint) - 1
    return index >= 0 and codepoint <= ranges[1][index]


# Philox-4x32-10 and TensorFlow's use of it in StatelessMultinomial (tensorflow/core/lib/random/philox_random.h,
# kernels/stateless_random_ops.cc GenerateKey, kernels/multinomial_op.cc).
_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)
_SEED_KEY = (0x3EC8F720, 0x02461E29)
_U32 = 0xFFFFFFFF


def philox4x32(counter: Sequence[int], key: Sequence[int]) -> tuple[int, int, int, int]:
    """Ten Philox rounds: four 32-bit counter words and two key words -> four 32-bit random words."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(10):
        p0, p1 = _PHILOX_M[0] * c0, _PHILOX_M[1] * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & _U32, (p0 >> 32) ^ c3 ^ k1, p0 & _U32
        k0, k1 = (k0 + _PHILOX_W[0]) & _U32, (k1 + _PHILOX_W[1]) & _U32
    return c0, c1, c2, c3


def stateless_uniform_double(seed: tuple[int, int]) -> float:
    """The first double in [0, 1) that TensorFlow's stateless multinomial draws for seed = (seed0, seed1)."""
    s0, s1 = (s & 0xFFFFFFFFFFFFFFFF for s in seed)  # int64 seeds, as their two's-complement bits
    mix = philox4x32((s0 & _U32, s0 >> 32, s1 & _U32, s1 >> 32), _SEED_KEY)
    x0, x1, _, _ = philox4x32((0, 0, mix[2], mix[3]), (mix[0], mix[1]))
    return (((x0 & 0xFFFFF) << 32) | x1) / 2.0**52  # 52 random mantissa bits, as Uint64ToDouble


def stateless_categorical(logits: np.ndarray, seed: tuple[int, int]) -> int:
    """One draw from softmax(logits) (a float32 vector), equal to `tf.random.stateless_categorical(logits[None],
    1, seed)` on CPU: an unnormalized running sum of exp(logit - max) in double precision and the first class
    whose sum exceeds u * total. Up to the last bit of exp, which may differ from TensorFlow's vectorized one."""
    logits = np.asarray(logits, np.float32)
    finite = np.isfinite(logits)
    top = float(logits[finite].max())
    running, cdf = 0.0, []
    for logit, ok in zip(logits.tolist(), finite.tolist()):
        if ok:
            running += math.exp(logit - top)
        cdf.append(running)
    index = int(np.searchsorted(np.array(cdf), stateless_uniform_double(seed) * running, side="right"))
    return min(index, len(cdf) - 1)


def _truncated(logits: np.ndarray, top_k: int, top_p: float) -> np.ndarray:
    """`logits` with -inf outside the top_k most probable entries and outside the nucleus, exactly as the
    SavedModel cuts them (pipeline.tasks.next_char.serving._truncated): ties at the edge are kept."""
    ranked = np.sort(logits)[::-1]
    keep = np.arange(ranked.size) < (top_k if 0 < top_k < ranked.size else ranked.size)
    edge = ranked[keep][-1]
    if top_p < 1:
        weights = np.exp((np.where(keep, ranked - ranked[0], -np.inf)).astype(np.float32))
        through = np.cumsum(weights, dtype=np.float32)
        nucleus = keep & ((through - weights) < np.float32(top_p) * through[-1])
        edge = max(edge, ranked[nucleus].min())
    return np.where(logits >= edge, logits, np.float32(-np.inf)).astype(np.float32)


def export_folder(path) -> Path:
    """The LiteRT export folder for `path`: the folder itself, its model.tflite, a SavedModel version folder holding
    it in `litert/`, or a model folder whose highest numeric version does (as TF Serving picks a version)."""
    path = Path(path)
    candidates = [path.parent if path.suffix == ".tflite" else path, path / "litert"]
    versions = sorted((int(p.name) for p in path.iterdir() if p.name.isdigit()), reverse=True) if path.is_dir() else []
    candidates += [path / str(version) / "litert" for version in versions[:1]]
    for folder in candidates:
        if (folder / DESCRIPTION_FILE).is_file():
            return folder
    raise LiteRTExportError(f"{path} is not a LiteRT export (no {DESCRIPTION_FILE} in it, in its litert/ folder or "
                            "in its highest version's)")  # fmt: skip


def is_litert_export(path) -> bool:
    try:
        export_folder(path)
    except (LiteRTExportError, OSError):
        return False
    return True


class LiteRTModel:
    """A LiteRT export, loaded: `predict` (sentiment) or `generate` (next_char), and the raw signatures.

    Args:
        path: the export folder (or its model.tflite, or the SavedModel version folder holding it in litert/).
        num_threads: LiteRT interpreter threads (None: its default).
    """

    def __init__(self, path, num_threads: int | None = None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise LiteRTExportError("running a LiteRT export needs the ai-edge-litert package (rnnpipe's litert extra: "
                                    "pip install 'rnnpipe[litert]')") from None  # fmt: skip
        self.folder = export_folder(path)
        try:
            description = json.loads((self.folder / DESCRIPTION_FILE).read_text(encoding="utf-8"))
            vocabulary = json.loads((self.folder / description["vocabulary"]).read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError) as error:
            raise LiteRTExportError(f"cannot read the LiteRT export {self.folder}: {error}") from None
        if description.get("format") != FORMAT or description.get("format_version") != FORMAT_VERSION:
            found = f"{description.get('format')!r} version {description.get('format_version')!r}"
            raise LiteRTExportError(f"{self.folder} holds format {found}, not {FORMAT!r} {FORMAT_VERSION}")
        self.description = description
        self.task = description["task"]
        self.class_names = tuple(description.get("class_names", ()))
        self.tokenizer = Tokenizer(vocabulary["level"], vocabulary["tokens"], vocabulary.get("standardize", "none"),
                                   vocabulary.get("sequence_length", 0), description["tokenization"],
                                   vocabulary.get("ngrams", ()))  # fmt: skip
        try:
            self.interpreter = Interpreter(model_path=str(self.folder / description["model"]), num_threads=num_threads)
            self.signatures = {name: self.interpreter.get_signature_runner(name) for name in description["signatures"]}
        except (OSError, ValueError) as error:
            raise LiteRTExportError(f"cannot load {self.folder / description['model']}: {error}") from None
        self.state_size = description.get("state", {}).get("size", 0)
        self._never_sample = description.get("generation", {}).get("never_sample", [])

    # sentiment

    def probabilities(self, texts: Sequence[str | bytes]) -> np.ndarray:
        """[batch] texts -> [batch, classes] float32 class probabilities."""
        self._require("sentiment")
        tokens = self.tokenizer.encode_words(texts)
        return self.signatures["serving_default"](tokens=tokens)["probabilities"]

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> list[dict]:
        """One {"text", "label", "probabilities": {class name: probability}} per text (as `rnnpipe predict`)."""
        results = []
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            for text, row in zip(batch, self.probabilities(batch)):
                probabilities = {name: round(float(p), 6) for name, p in zip(self.class_names, row)}
                results.append(
                    {"text": text, "label": self.class_names[int(np.argmax(row))], "probabilities": probabilities}
                )
        return results

    # next_char

    def initial_state(self, batch: int = 1) -> np.ndarray:
        return np.zeros((batch, self.state_size), np.float32)

    def read_prompt(self, prompts: Sequence[str | bytes], state: np.ndarray | None = None) -> dict:
        """The "read_prompt" signature on tokenized prompts ("\\n" for an empty one): {"logits", "probabilities"
        (of the character after each prompt), "state"}."""
        self._require("next_char")
        rows = [self.tokenizer.encode_chars(p) or self.tokenizer.encode_chars(self._empty_prompt) for p in prompts]
        char_ids = np.zeros((len(rows), max(len(row) for row in rows)), np.int32)
        for i, row in enumerate(rows):
            char_ids[i, : len(row)] = row
        lengths = np.array([len(row) for row in rows], np.int32)
        state = self.initial_state(len(rows)) if state is None else np.asarray(state, np.float32)
        return self.signatures["read_prompt"](char_ids=char_ids, lengths=lengths, state=state)

    def step(self, char_ids: Sequence[int], state: np.ndarray) -> dict:
        """The "step" signature: one character per row -> {"logits", "probabilities", "state"}."""
        self._require("next_char")
        return self.signatures["step"](char_id=np.asarray(char_ids, np.int32), state=np.asarray(state, np.float32))

    def sample(self, logits: np.ndarray, temperature: float, seed: int | None = None, step: int = 0,
               rng: np.random.Generator | None = None, top_k: int = 0, top_p: float = 1.0) -> int:  # fmt: skip
        """One character id from one row of logits, never an excluded one (the out-of-vocabulary entry), with the
        SavedModel's sampling controls (pipeline.tasks.next_char.serving): `top_k` > 0 keeps the k most probable
        characters,
        `top_p` < 1 then the smallest set of the most probable ones holding that probability. With `seed`, the draw
        is TensorFlow's stateless one for seed [seed, step]; otherwise `rng`'s."""
        # As the SavedModel samples: the excluded entries at -inf before the division, and the temperature floored
        # where a smaller one would overflow the logits.
        scaled = np.array(logits, np.float32)
        scaled[self._never_sample] = -np.inf
        scaled /= np.float32(max(temperature, MIN_TEMPERATURE))
        if 0 < top_k < scaled.size or top_p < 1:
            scaled = _truncated(scaled, top_k, top_p)
        if seed is not None:
            return stateless_categorical(scaled, (seed, step))
        weights = np.exp(scaled.astype(np.float64) - scaled.max())
        return int((rng or np.random.default_rng()).choice(len(weights), p=weights / weights.sum()))

    def generate(self, prompt: str | bytes, length: int = 200, temperature: float = 1.0,
                 seed: int | None = None, top_k: int = 0, top_p: float = 1.0) -> str:  # fmt: skip
        """`length` characters continuing `prompt` (the continuation only); the same seed gives the same text, and
        the text the SavedModel's "sample" signature gives for it (a batch of one prompt)."""
        return "".join(self.generate_chars(prompt, length, temperature, seed, top_k, top_p))

    def generate_chars(self, prompt: str | bytes, length: int = 200, temperature: float = 1.0,
                       seed: int | None = None, top_k: int = 0, top_p: float = 1.0) -> Iterator[str]:  # fmt: skip
        """`generate`, one character at a time, as each is sampled."""
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise LiteRTExportError(f"length must be an integer >= 0, got {length!r}")
        if length > self.max_length:
            raise LiteRTExportError(f"length {length:,} is above this export's max_length of {self.max_length:,}")
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise LiteRTExportError(f"temperature must be a finite number > 0, got {temperature!r}")
        if not 0 <= top_k or not 0 < top_p <= 1:
            raise LiteRTExportError(f"top_k must be >= 0 and top_p in (0, 1], got {top_k!r}, {top_p!r}")
        return self._chars(prompt, length, temperature, seed, top_k, top_p)

    def _chars(self, prompt, length, temperature, seed, top_k, top_p) -> Iterator[str]:
        rng = np.random.default_rng() if seed is None else None
        out = self.read_prompt([prompt])
        for t in range(length):
            char_id = self.sample(out["logits"][0], temperature, seed, t, rng, top_k, top_p)
            yield self.tokenizer.decode_chars([char_id])
            if t + 1 < length:
                out = self.step([char_id], out["state"])

    @property
    def max_length(self) -> int:
        """The longest generation this export allows (its `export.max_length`)."""
        return int(self.description.get("generation", {}).get("max_length", DEFAULT_MAX_LENGTH))

    @property
    def _empty_prompt(self) -> str:
        return self.description.get("generation", {}).get("empty_prompt", "\n")

    def _require(self, task: str) -> None:
        if self.task != task:
            raise LiteRTExportError(f"{self.folder} is a {self.task} model, not a {task} one")
