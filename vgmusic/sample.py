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

import re  # noqa: E402
import sys  # noqa: E402
from collections import deque  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from .checkpoint import read_sidecar, weights_path  # noqa: E402
from .config import default_model_dir, parse_key  # noqa: E402
from .encode import GRID, MAX_STEP, PAD, get_encoding, token_kind  # noqa: E402

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
    if 0 < top_k < z.shape[1]:  # k at or above the vocabulary keeps every token
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


def fit_token(enc, vocab, token, now, end, count, limit, forced):
    """The token to feed at time `now` when the song (or phrase) must end exactly at `end`: a row past
    `limit` sampled tokens is stuck (e.g. chords without waits) and rests instead; a wait past the end
    is cut at it, its remainder queued on `forced`, so every phrase is whole bars."""
    if count > limit and token_kind(token) != "wait":
        token = f"w{MAX_STEP}"
    step = enc.advance(token)
    if step and now + step > end:
        waits = enc.waits(end - now)
        forced.extend(vocab.index[w] for w in waits[1:])
        token = waits[0]
    return vocab.index[token]


class Row:
    """One song being written: where it is in time and in the form, and what it must replay.
    It ends after `events` events at a phrase's end, or, given `bars`, after exactly that many bars.
    `preroll` bars are composed first and dropped, so the song starts mid-music (a loop has no
    beginning); `song` and `length` are the song's own tokens and grid steps."""

    def __init__(self, enc, vocab, form, phrase_bars, events, bars=0, preroll=0):
        self.enc, self.vocab, self.form, self.events = enc, vocab, form, events
        self.phrase, self.total = phrase_bars * BAR, bars * BAR
        self.tokens, self.now, self.section, self.t0, self.skip = [], 0, -1, 0, 0
        self.phrases = {}  # (letter, cycle) -> (tokens, index where its last bar starts)
        self.sections = []  # (start step, label) of each phrase written: the piano roll's parts
        self.forced, self.done = deque(), False
        if preroll:  # a phrase outside the form, none of it kept
            self.start, self.end, self.key, self.recording, self.count = 0, preroll * BAR, None, None, 0
        else:
            self.next_section()

    @property
    def song(self):
        return self.tokens[self.skip:]

    @property
    def length(self):
        return self.now - self.t0

    def next_section(self):
        self.section += 1
        self.start = self.now
        self.end = self.now + self.phrase if not self.total else min(self.now + self.phrase, self.t0 + self.total)
        letter, vary = self.form[self.section % len(self.form)]
        cycle = self.section // len(self.form)
        self.key = (letter, cycle)  # each pass through the form has new themes
        mark = "'" if vary else ""
        self.sections.append((self.length, f"{letter}{cycle + 1 if cycle else ''}{mark}"))
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
        self.count += 1
        return fit_token(self.enc, self.vocab, self.vocab.tokens[sampled], self.now, self.end, self.count,
                         MAX_TOKENS_PER_BAR * self.phrase // BAR, self.forced)

    def feed(self, token_id):
        self.tokens.append(token_id)
        if self.recording is not None:
            self.recording.append(token_id)
        self.now += self.enc.advance(self.vocab.tokens[token_id])
        if self.recording is not None and self.cut is None and self.now >= self.end - BAR:
            self.cut = len(self.recording)
        if self.now < self.end:
            return
        if self.key is None:  # the preroll is over: the song starts here
            self.t0, self.skip = self.now, len(self.tokens)
            return self.next_section()
        if self.recording is not None:
            self.phrases[self.key] = (self.recording, self.cut or len(self.recording))
        if self.total:
            finished = self.length >= self.total
        else:
            finished = self.enc.events([self.vocab.tokens[t] for t in self.song]) >= self.events
        if finished and not self.forced:
            self.done = True
        else:
            # a replay longer than what is left (--bars) is cut at the song's end by the next phrase
            self.next_section()
            if self.total and self.forced:
                self.forced = deque(clip(self.enc, self.vocab, list(self.forced), self.end - self.now))

    def part_of(self, onset_steps):
        return next(label for start, label in reversed(self.sections) if start <= onset_steps)


def clip(enc, vocab, ids, length):
    """The tokens of `ids` that fall within `length` grid steps, the last wait cut at it."""
    out, now = [], 0
    for i in ids:
        step = enc.advance(vocab.tokens[i])
        if now + step > length:
            return out + [vocab.index[w] for w in enc.waits(length - now)]
        out.append(i)
        now += step
        if now == length and step:
            return out
    return out


def compose_tokens(make_stepper, enc, vocab, seed_ids, events, rng, temperature=1.0, top_k=0, top_p=1.0,
                   form="AA'BA'", phrase_bars=4, batch=1, bars=0, preroll=0, progress=None):
    """`batch` songs (Rows) of at least `events` events, or of exactly `bars` bars, each ending on a bar
    line. `progress(steps)` is told how far in time the slowest song has come."""
    rows = [Row(enc, vocab, parse_form(form), phrase_bars, events, bars, preroll) for _ in range(batch)]
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
        if progress:
            progress(min(r.length for r in rows))
        logits = stepper.step(feed)
    return rows


def prime_seed(path, enc, vocab, window, arch):
    """Seed ids from the end of a MIDI file, and the semitones that return a key-normalised song to its key."""
    from .extract import parse_file  # in a child process, bounded in time and memory like extraction
    try:
        song = parse_file(path)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    known = [t for t in [PAD] * window + enc.song_tokens(song) if t in vocab.index]
    if len(known) < (1 if arch == "lstm" else window):  # only the LSTM takes any seed length
        raise ValueError(f"{path}: too few tokens this model knows to fill its window of {window}")
    return vocab.ids(known[-window:]), enc.song_shift(song), song.get("tempo")


def compose(cfg, game, engine="numpy", progress=False):
    """(sidecar, songs): `cfg.num` songs composed as one batch, each a dict of its tokens, timed notes
    [onset, duration, pitch] in beats, the part (form section) of each note, its length and tempo,
    and, with --loop, its seam figures. Nothing is written."""
    folder = Path(cfg.model_dir) if cfg.model_dir else default_model_dir(game)
    meta, vocab, make_stepper = load_model(folder, cfg.which, engine)
    enc = get_encoding(meta["encoding"])
    window = meta["hparams"]["window"]
    seed = cfg.seed if cfg.seed >= 0 else int(np.random.SeedSequence().entropy % 2 ** 32)
    rng = np.random.default_rng(seed)
    back, tempo = 0, meta.get("tempo")
    if cfg.prime:
        ids, back, tempo = prime_seed(cfg.prime, enc, vocab, window, meta["arch"])
    elif PAD in vocab.index:
        ids = vocab.ids([PAD] * window)  # the start of a song, as every training song began
    else:
        raise ValueError(f"{folder}: this model has no start-of-song token; seed it with --prime FILE.mid")
    bpm = cfg.bpm or tempo or 120.0
    bars = cfg.bars or (max(1, round(cfg.seconds * bpm / 60 / BEATS_PER_BAR)) if cfg.seconds else 0)
    sampling = dict(temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p)
    with Progress(progress, bars, cfg.num) as shown:
        def compose_more(n):
            return compose_tokens(make_stepper, enc, vocab, ids, cfg.length, rng, form=cfg.form, batch=n,
                                  phrase_bars=cfg.phrase_bars, bars=bars, progress=shown.composing,
                                  preroll=cfg.phrase_bars if cfg.loop else 0, **sampling)
        rows, loops = compose_more(cfg.num), [None] * cfg.num
        if cfg.loop:
            from .loop import close_loops, loop_songs
            loops = loop_songs(rows, compose_more, lambda songs: close_loops(
                make_stepper, enc, vocab, ids, songs, rng, candidates=cfg.loop_candidates,
                progress=shown.closing, **sampling), cfg.loop_tries)
    songs = []
    for i, row in enumerate(rows):
        loop = loops[i]
        if loop:  # the song the loop closes, with the closing's last bar
            row, closing = loop.pop("row"), loop.pop("tokens")
        tokens = [vocab.tokens[t] for t in (closing if loop else row.song)]
        end = row.length / GRID
        # a key-normalised model composes in C major / A minor: a primed song returns to the prime's key
        notes = [[n[0], min(n[1], end - n[0]), n[2] - back] for n in enc.decode(tokens) if 0 <= n[2] - back <= 127]
        key = None
        if cfg.key and notes:
            shift, key = to_key(notes, cfg.key)
            notes = [[n[0], n[1], n[2] + shift] for n in notes if 0 <= n[2] + shift <= 127]
        songs.append({"tokens": tokens, "notes": notes, "parts": [row.part_of(round(n[0] * GRID)) for n in notes],
                      "beats": end, "bpm": bpm, "events": enc.events(tokens), "key": key, "seed": seed,
                      "index": i + 1, "loop": loop, "preroll": [vocab.tokens[t] for t in row.tokens[:row.skip]]})
    return meta, songs


class Progress:
    """A progress bar in beats while songs are composed, and another while their loops are closed; shown
    only on a terminal and when asked for."""

    def __init__(self, show, bars, num):
        self.show, self.total, self.num, self.bar = show and sys.stderr.isatty(), bars * BEATS_PER_BAR, num, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()

    def _to(self, what, beats):
        if not self.show:
            return
        if self.bar is None or self.bar.desc != what:
            from tqdm import tqdm
            if self.bar is not None:
                self.bar.close()
            self.bar = tqdm(total=self.total or None, desc=what, unit="beat", file=sys.stderr, leave=False)
        self.bar.update(max(0.0, beats - self.bar.n))

    def composing(self, steps):
        self._to(f"composing {self.num} song{'s' if self.num > 1 else ''}", steps / GRID)

    def closing(self, steps):
        self._to("closing loops", steps / GRID)


# Krumhansl and Kessler's key profiles: how well each scale degree fits a major or a minor key.
KEY_PROFILES = {"major": [6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88],
                "minor": [6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17]}
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def estimate_key(notes):
    """(tonic pitch class, mode) by the Krumhansl-Schmuckler method, each note weighted by its length."""
    weight = np.zeros(12)
    for n in notes:
        weight[int(n[2]) % 12] += n[1]
    return max(((np.corrcoef(weight, np.roll(profile, tonic))[0, 1], tonic, mode)
                for mode, profile in KEY_PROFILES.items() for tonic in range(12)))[1:]


def to_key(notes, wanted):
    """(semitones, key name reached) moving a song to the key named `wanted`. The song keeps its mode:
    a major song asked for D minor goes to F major, which has D minor's notes."""
    tonic, mode = estimate_key(notes)
    target, target_mode = parse_key(wanted)
    if target_mode != mode:
        target = (target + (3 if target_mode == "minor" else -3)) % 12  # the relative key
    shift = (target - tonic + 6) % 12 - 6  # the nearer way, so the song stays in its register
    return shift, f"{NOTE_NAMES[target]} {mode}"
