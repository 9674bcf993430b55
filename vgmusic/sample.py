"""Compose: load a model folder, sample a song phrase by phrase in a form, decode it, write MIDI.

Composing imports neither TensorFlow nor Keras: `infer.NumpyNet` runs the network from the
same weights file, and tests prove it gives the Keras model's probabilities. Keras stays
available as the reference engine (`compose(..., engine="keras")`).

Why a form: trained on a few dozen one-minute songs, no network here learned to return to
its own material (sampled without a form, the shipped models return to earlier bars in 2-14% of
bars, against 38-58% in the songs: docs/eval/ and the README).
So the song is built the way these songs are: phrases of whole bars, some of them
repeats of an earlier phrase (A A' B A': A' replays A and composes a new last
bar, a different cadence). The network composes every new phrase, and while a phrase is
replayed it hears it, so what follows continues from it.
"""
import os

# Batch-1 steps are small matrix-vector products: BLAS threads only add overhead (3-7x the CPU on the
# window models when cores are busy). Set before NumPy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import datetime  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from collections import deque  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from . import ROOT  # noqa: E402
from .checkpoint import read_sidecar, weights_path  # noqa: E402
from .config import PredictConfig, build, default_model_dir, parser_for  # noqa: E402
from .encode import GRID, MAX_STEP, PAD, get_encoding, load_songs, token_kind  # noqa: E402
from .render import piano_roll, write_midi  # noqa: E402

BEATS_PER_BAR = 4  # the songs are in 4/4 (music21 reads no other metre from most of them)
BAR = BEATS_PER_BAR * GRID
# A phrase the network fills with more tokens than this per bar is stuck (e.g. chords without
# waits): the rest of the phrase is then a rest, so generation always ends.
MAX_TOKENS_PER_BAR = 96


def load_model(folder, which="best", engine="numpy"):
    """(sidecar, vocabulary, stepper factory batch -> stepper), checked against each other."""
    meta, vocab = read_sidecar(folder)
    path = weights_path(folder, which)
    arch, hparams = meta["arch"], meta["hparams"]
    if engine == "numpy":
        from .infer import NumpyNet
        net = NumpyNet(arch, len(vocab), hparams, path)
        return meta, vocab, net.stepper
    from .model import build_model, keras_stepper
    model = build_model(arch, len(vocab), hparams)
    try:
        model.load_weights(path)
    except Exception as e:
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: weights do not fit the vocabulary ({len(vocab)} tokens) and "
                         f"architecture in the sidecar: {reason}") from None
    return meta, vocab, lambda batch=1: keras_stepper(arch, model, hparams["window"], batch)


def pick(logits, rng, temperature=1.0, top_k=0, top_p=1.0, banned=()):
    """One token per row. One uniform draw per row whatever the settings, so a seed repeats a song
    on either engine. Temperature 0 is the original's argmax."""
    z = np.array(logits, np.float64)
    z[:, list(banned)] = -np.inf
    u = rng.random(len(z))
    if temperature <= 0:
        return z.argmax(1)
    z = z / temperature
    if top_k:
        kth = np.partition(z, -top_k, axis=1)[:, -top_k][:, None]
        z[z < kth] = -np.inf
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    if top_p < 1:
        # nucleus: the smallest set of likeliest tokens whose probability reaches top_p
        order = np.argsort(-p, axis=1, kind="stable")
        sorted_p = np.take_along_axis(p, order, 1)
        drop = np.cumsum(sorted_p, 1) - sorted_p >= top_p
        np.put_along_axis(p, order, np.where(drop, 0.0, sorted_p), 1)
        p /= p.sum(1, keepdims=True)
    return np.minimum((np.cumsum(p, 1) < u[:, None]).sum(1), p.shape[1] - 1)


def parse_form(form):
    """'AA'BA'' -> [('A', False), ('A', True), ('B', False), ('A', True)]; ' varies a repeat's last bar."""
    if not re.fullmatch(r"(?:[A-Za-z]'?)+", form.replace(" ", "")):
        raise ValueError(f"--form must be letters, each optionally followed by ' (e.g. \"AA'BA'\"), got {form!r}")
    return [(m[0].upper(), m[1] == "'") for m in re.findall(r"([A-Za-z])('?)", form)]


class Row:
    """One song being written: where it is in time and in the form, and what it must replay."""

    def __init__(self, enc, vocab, form, phrase_bars, events):
        self.enc, self.vocab, self.form, self.events = enc, vocab, form, events
        self.phrase = phrase_bars * BAR
        self.tokens, self.now, self.section = [], 0, -1
        self.phrases = {}  # (letter, cycle) -> (tokens, index where its last bar starts)
        self.forced, self.done = deque(), False
        self.next_section()

    def next_section(self):
        self.section += 1
        self.start, self.end = self.now, self.now + self.phrase
        letter, vary = self.form[self.section % len(self.form)]
        self.key = (letter, self.section // len(self.form))  # each pass through the form has new themes
        self.recording, self.cut, self.count = None, None, 0
        if self.key in self.phrases:
            tokens, cut = self.phrases[self.key]
            self.forced = deque(tokens[:cut] if vary else tokens)
        else:
            self.recording = []

    def choose(self, sampled):
        """The token this row feeds next: a replayed one, or the sample fitted to the phrase's end."""
        if self.forced:
            return self.forced.popleft()
        token = self.vocab.tokens[sampled]
        self.count += 1
        if self.count > MAX_TOKENS_PER_BAR * self.phrase // BAR and token_kind(token) != "wait":
            token = f"w{MAX_STEP}"  # stuck: rest out the phrase (the wait is cut at its end below)
        step = self.enc.advance(token)
        if step and self.now + step > self.end:
            # a wait past the phrase's end is cut at it, so every phrase is whole bars
            waits = self.enc.waits(self.end - self.now)
            self.forced.extend(self.vocab.index[w] for w in waits[1:])
            token = waits[0]
        return self.vocab.index[token]

    def feed(self, token_id):
        self.tokens.append(token_id)
        if self.recording is not None:
            self.recording.append(token_id)
        self.now += self.enc.advance(self.vocab.tokens[token_id])
        if self.recording is not None and self.cut is None and self.now >= self.end - BAR:
            self.cut = len(self.recording)
        if self.now >= self.end:
            if self.recording is not None:
                self.phrases[self.key] = (self.recording, self.cut or len(self.recording))
            made = self.enc.events([self.vocab.tokens[t] for t in self.tokens])
            if made >= self.events and not self.forced:
                self.done = True
            else:
                self.next_section()


def compose_tokens(make_stepper, enc, vocab, seed_ids, events, rng, temperature=1.0, top_k=0, top_p=1.0,
                   form="AA'BA'", phrase_bars=4, batch=1):
    """Token ids of `batch` songs of at least `events` events, each ending on a phrase's (bar's) end."""
    rows = [Row(enc, vocab, parse_form(form), phrase_bars, events) for _ in range(batch)]
    stepper = make_stepper(batch)
    logits = stepper.start(np.tile(np.asarray(seed_ids, np.int64)[None], (batch, 1)))
    banned = [vocab.index[PAD]] if PAD in vocab.index else []
    while not all(r.done for r in rows):
        sampled = pick(logits, rng, temperature, top_k, top_p, banned)
        feed = np.zeros(batch, np.int64)
        for i, row in enumerate(rows):
            if not row.done:
                feed[i] = row.choose(sampled[i])
                row.feed(int(feed[i]))
        logits = stepper.step(feed)
    return [[vocab.tokens[t] for t in r.tokens] for r in rows], [r.now / GRID for r in rows]


def prime_seed(path, enc, vocab, window, arch):
    """Seed ids from the end of a MIDI file, and the semitones that return a key-normalised song to its key."""
    from .extract import parse_midi
    try:
        song = parse_midi(path)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    known = [t for t in [PAD] * window + enc.song_tokens(song) if t in vocab.index]
    if len(known) < (1 if arch == "lstm" else window):  # only the LSTM takes any seed length
        raise ValueError(f"{path}: too few tokens this model knows to fill its window of {window}")
    return vocab.ids(known[-window:]), enc.song_shift(song), song.get("tempo")


def new_generation_path(folder):
    """<timestamp>.mid, with a counter when several songs are written within one second."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = folder / f"{stamp}.mid", 1
    while path.exists():
        n += 1
        path = folder / f"{stamp}-{n}.mid"
    return path


def copy_warning(notes, meta, data_dir):
    """One line when the song copies the training songs more than held-out human songs do, if they are here."""
    baseline = meta.get("baselines", {}).get("copied_share")
    if baseline is None:
        return None
    try:
        songs = load_songs(data_dir, meta["game"])
    except (OSError, ValueError):
        return None  # the songs are not on this machine (shipped models): nothing to compare with
    from .evaluate import originality
    enc = get_encoding(meta["encoding"])
    trained = {f for _, f, _ in meta["songs"]["train"]}
    refs = [enc.song_notes(s) for s in songs if s["file"] in trained]
    got = originality(notes, refs)
    if got["copied_share"] > baseline + 0.05:
        return (f"warning: {got['copied_share']:.0%} of this song's 8-note runs are in the training songs "
                f"(held-out human songs: {baseline:.0%}); longest verbatim run {got['longest_match']} notes")
    return None


def compose(cfg, game, engine="numpy"):
    folder = Path(cfg.model_dir) if cfg.model_dir else default_model_dir(game)
    meta, vocab, make_stepper = load_model(folder, cfg.which, engine)
    enc = get_encoding(meta["encoding"])
    window = meta["hparams"]["window"]
    rng = np.random.default_rng(None if cfg.seed < 0 else cfg.seed)
    back, tempo = 0, meta.get("tempo")
    if cfg.prime:
        seed, back, tempo = prime_seed(cfg.prime, enc, vocab, window, meta["arch"])
    elif PAD in vocab.index:
        seed = vocab.ids([PAD] * window)  # the start of a song, as every training song began
    else:
        raise ValueError(f"{folder}: this model has no start-of-song token; seed it with --prime FILE.mid")
    (tokens,), (end,) = compose_tokens(make_stepper, enc, vocab, seed, cfg.length, rng, cfg.temperature,
                                       cfg.top_k, cfg.top_p, cfg.form, cfg.phrase_bars)
    # a key-normalised model composes in C major / A minor: a primed song returns to the prime's key
    notes = [[n[0], min(n[1], end - n[0]), n[2] - back] for n in enc.decode(tokens) if 0 <= n[2] - back <= 127]
    out = Path(cfg.out) if cfg.out else new_generation_path(ROOT / game / "generations")
    tempo = cfg.tempo or tempo or 120.0
    write_midi(notes, out, tempo=tempo, program=cfg.program, end=end)
    if cfg.roll:
        piano_roll(notes, out.with_suffix(".png"), f"{game}: {meta['arch']}, form {cfg.form}", tempo)
    return out, tokens, notes, meta


def main(game=None, argv=None):
    skip = ("game",) if game else ()
    parser = parser_for(PredictConfig, f"Compose a new song with {game or 'a game'}'s trained model.", skip=skip)
    args = parser.parse_args(argv)
    game = game or args.game
    if not game:
        parser.error("--game is required")
    cfg = build(PredictConfig, args, game=game)
    try:
        out, tokens, notes, meta = compose(cfg, game)
        warning = copy_warning(notes, meta, cfg.data_dir)
    except (ValueError, OSError) as e:
        sys.exit(f"error: {e}")
    enc = get_encoding(meta["encoding"])
    beats = sum(enc.advance(t) for t in tokens) / GRID
    print(f"wrote {out}: {enc.events(tokens)} events, {len(notes)} notes, {beats / BEATS_PER_BAR:g} bars, "
          f"{len({n[2] for n in notes})} distinct pitches")
    if warning:
        print(warning, file=sys.stderr)
    return out
