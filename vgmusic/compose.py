"""Composing as a library: `compose(model, request) -> [Song]`, nothing written, no command line inside.

    model = load_model("pokemon_red_blue_yellow/weights")
    songs = compose(model, Request(num=4, bars=16, loop=True, seed=1))

Composing imports neither TensorFlow nor Keras: the network runs in NumPy (vgmusic.infer) from the
same weights file, and tests prove it gives the Keras model's probabilities; Keras stays available as the
reference engine (`load_model(..., engine="keras")`). Every song is a plan run by the one batched
decoding loop (vgmusic.decode): its form (vgmusic.form), then, for a loop, the choice of its last bar
(vgmusic.loop). A prime is the context the plans start from.
"""
import os

# Batch-1 steps are small matrix-vector products: BLAS threads only add overhead (3-7x the CPU on the
# window models when cores are busy). Set before NumPy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys  # noqa: E402
import dataclasses  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from . import nets  # noqa: E402
from .games import DEFAULT_REPEAT_PENALTY, REPEAT_PENALTY  # noqa: E402  (plain data: not the flags of config.py)
from .characters import choose  # noqa: E402
from .checkpoint import check_weights_file, read_sidecar, weights_path  # noqa: E402
from .decode import BEATS_PER_BAR, decode  # noqa: E402
from .encode import ANY_STYLE, GRID, PAD, control, get_encoding, token_kind  # noqa: E402
from .form import FormPlan  # noqa: E402
from .sampling import Sampling, kind_groups, prior_array  # noqa: E402
from .song import Key, Note, Section, Song, Track  # noqa: E402
from .theory import parse_key, to_key  # noqa: E402


class Model:
    """A trained model folder, loaded: its sidecar, vocabulary, encoding, and a stepper factory
    (batch -> stepper with start(seed ids) and step(ids) -> next-token logits), checked against each other."""

    def __init__(self, folder, which="best", engine="numpy"):
        self.folder = Path(folder)
        self.meta, self.vocab = read_sidecar(self.folder)
        self.enc = get_encoding(self.meta["encoding"])
        self.arch, hparams = self.meta["arch"], self.meta["hparams"]
        self.window = hparams["window"]
        path = weights_path(self.folder, which)
        if engine == "numpy":
            from .infer import NumpyNet
            self.make_stepper = NumpyNet(self.arch, len(self.vocab), hparams, path).stepper
        else:
            from .model import build_model, keras_stepper
            model = build_model(self.arch, len(self.vocab), hparams)
            try:
                model.load_weights(path)
            except Exception as e:
                reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
                raise ValueError(f"{path}: weights do not fit the vocabulary ({len(self.vocab)} tokens) and "
                                 f"architecture in the sidecar: {reason}") from None
            self.make_stepper = lambda batch=1: keras_stepper(self.arch, model, self.window, batch)
        check_weights_file(path, self.meta, which)
        # never sampled: the start-of-song pad, and control tokens, which only a plan may place
        self.banned = np.array([i for i, t in enumerate(self.vocab.tokens) if token_kind(t) in ("pad", "control")],
                               np.int64)
        self.kinds = kind_groups(token_kind(t) for t in self.vocab.tokens)  # for sampling rhythm apart
        # the rhythm calibration's logit offsets (vgmusic/calibrate.py), if it was measured on these weights
        sha = (self.meta.get("weights_sha256") or {}).get(which)
        fits = lambda prior: prior and prior.get("weights_sha256") == sha  # noqa: E731
        prior = self.meta.get("rhythm_prior")
        self.prior = prior_array(prior["bias"], self.vocab) if fits(prior) else None
        # calibrate --style: each source's rhythm as offsets of the same kind, chosen by --style
        self.style_priors = {name: prior_array(p["bias"], self.vocab)
                             for name, p in (self.meta.get("style_priors") or {}).items() if fits(p)}
        # each training song's repeat penalty (vgmusic/characters.py), measured on these weights too
        found = self.meta.get("characters")
        self.characters = found["songs"] if fits(found) else []
        # what a rest is made of (decode.open_with_a_note: never a song's first token); none in classic tokens
        self.rests = np.array([i for i, t in enumerate(self.vocab.tokens) if token_kind(t) in ("wait", "duration")],
                              np.int64)

    def style_name(self, style):
        """The source a --style names (a unique prefix will do): one the model has a style token or a
        calibrated style prior for; "" for none named."""
        if not style:
            return ""
        known = sorted(set(self.meta.get("styles") or {}) | set(self.style_priors))
        if not known:
            raise ValueError(f"{self.folder}: this model has no styles, so --style cannot choose one "
                             f"(python -m vgmusic calibrate --style all, or train with --style)")
        found = [name for name in known if name == style] or [name for name in known if name.startswith(style)]
        if len(found) != 1:
            raise ValueError(f"--style {style!r}: {'ambiguous' if found else 'unknown'}; this model knows "
                             f"{', '.join(known)}")
        return found[0]

    def style_token(self, style=""):
        """The control token a --style model's windows start with: the named source's, or, with none
        named, the one it learned every style under; None for other models (and for a style it holds only
        as a prior)."""
        styles = self.meta.get("styles") or {}
        name = self.style_name(style)
        if not styles:
            return None
        return styles.get(name) or control(ANY_STYLE)  # a style it holds only as a prior: any style

    def start_ids(self, style=""):
        """The context a song starts from when nothing primes it: the start of a song, as training began."""
        if PAD not in self.vocab.index:
            raise ValueError(f"{self.folder}: this model has no start-of-song token; prime it with a song")
        return self._styled([PAD] * self.window, style)

    def prime_ids(self, song, where="the prime", style=""):
        """Context ids from the end of a Song, and the semitones that take the model's key back to the song's."""
        # notes the key's move takes past MIDI's range are left out of the context
        tokens = self.enc.song_tokens(song, drop_outside=True)
        known = [t for t in [PAD] * self.window + tokens if t in self.vocab.index]
        if len(known) < nets.get(self.arch).min_seed(self.window):
            raise ValueError(f"{where}: too few tokens this model knows to fill its window of {self.window}")
        return self._styled(known[-self.window:], style), self.enc.song_shift(song)

    def _styled(self, tokens, style):
        """The window's first token made the style's, as every training window of a --style model began."""
        token = self.style_token(style)
        return self.vocab.ids([token] + tokens[1:] if token else tokens)


def load_model(folder, which="best", engine="numpy"):
    return Model(folder, which, engine)


@dataclass
class Request:
    """What to compose. Lengths: `events` at least (ending on the bar line of the phrase that reaches
    them), or exactly `bars`, or `seconds` rounded to whole bars at the tempo."""
    num: int = 1
    events: int = 500
    bars: int = 0
    seconds: float = 0.0
    form: str = "AA'BA'"
    phrase_bars: int = 4
    sampling: Sampling = field(default_factory=Sampling)
    loop: bool = False
    loop_tries: int = 4
    loop_candidates: int = 16
    prime: Song = None  # continue this song's end instead of starting a song
    bpm: float = 0.0  # 0: the prime's, else the training songs' median
    key: str = ""  # move the song to this key ("D minor"); "" keeps it as composed
    program: int = 0  # the melody's General MIDI instrument
    instrument: str = ""  # its name, for the track
    seed: int = None  # None draws a fresh one (the songs' meta records it)
    style: str = ""  # a --style model: compose in this source's style ("": in all of them)
    intro: int = 0  # bars of intro before the song, which then loops after it (an intro implies `loop`)
    # one repeat penalty per song, in order (the calibration's); () with no penalty in `sampling`: each
    # song's character's (vgmusic/characters.py), else the game's
    repeat_penalties: tuple = ()


def compose(model, request, progress=False):
    """`request.num` Songs composed as one batch, each with one melody track, its form's sections and,
    for a loop, its loop points and seam figures (in meta["loop"]); with an intro, the loop starts after it."""
    r = request
    style = model.style_name(r.style)
    if r.repeat_penalties and len(r.repeat_penalties) != r.num:
        raise ValueError(f"{len(r.repeat_penalties)} repeat penalties for {r.num} songs")
    # each song's character: only where no penalty is asked for, for all or for each
    characters = model.characters if r.sampling.repeat_penalty is None and not r.repeat_penalties else []
    if r.sampling.repeat_penalty is None:  # the game's own; composing one game's style, that game's
        game = style if style in REPEAT_PENALTY else model.meta.get("game")
        r = dataclasses.replace(r, sampling=dataclasses.replace(
            r.sampling, repeat_penalty=REPEAT_PENALTY.get(game, DEFAULT_REPEAT_PENALTY)))
    strength = r.sampling.rhythm_prior
    # the rhythm calibration: the style's when one is named and calibrated, else the model's own
    prior = model.style_priors.get(style, model.prior)
    if r.sampling.prior is None and prior is not None and strength != 0:
        r = dataclasses.replace(r, sampling=dataclasses.replace(
            r.sampling, prior=prior * np.float32(1.0 if strength is None else strength)))
    seed = r.seed if r.seed is not None and r.seed >= 0 else int(np.random.SeedSequence().entropy % 2 ** 32)
    rng = np.random.default_rng(seed)
    back, tempo = 0, model.meta.get("tempo")
    if r.prime is not None:
        ids, back = model.prime_ids(r.prime, r.prime.title or "the prime", r.style)
        tempo = r.prime.bpm
    else:
        ids = model.start_ids(r.style)
    bpm = r.bpm or tempo or 120.0
    bars = r.bars or (max(1, round(r.seconds * bpm / 60 / BEATS_PER_BAR)) if r.seconds else 0)
    enc, vocab = model.enc, model.vocab
    # an intro is where the song begins, so it starts from the start of a song (or the prime) and needs
    # no preroll: the body's first bar is already a continuation, of the intro
    looping = r.loop or r.intro > 0
    preroll = r.phrase_bars if looping and not r.intro else 0
    chosen = [choose(characters, seed, i, style) for i in range(r.num)]
    penalties = r.repeat_penalties or [c and c["repeat_penalty"] for c in chosen]
    with Progress(progress, bars, r.num) as shown:
        def compose_more(rows):
            plans = [FormPlan(enc, vocab, r.form, r.phrase_bars, r.events, bars, preroll, r.intro) for _ in rows]
            for plan, i in zip(plans, rows):
                plan.repeat_penalty = penalties[i]
            n = len(plans)
            stepper = model.make_stepper(n)
            logits = stepper.start(np.tile(np.asarray(ids, np.int64)[None], (n, 1)))
            decode(stepper, logits, plans, rng, r.sampling, model.banned,
                   progress=lambda: shown.composing(min(p.length for p in plans)), kinds=model.kinds,
                   opening=() if r.prime is not None else model.rests)  # a primed song goes on as it was
            return plans
        plans, loops = compose_more(range(r.num)), [None] * r.num
        if looping:
            from .loop import close_loops, loop_songs
            loops = loop_songs(plans, compose_more, lambda songs: close_loops(
                model.make_stepper, enc, vocab, ids, songs, rng, r.sampling, model.banned,
                candidates=r.loop_candidates, progress=shown.closing, kinds=model.kinds), r.loop_tries)
    songs = [_song(model, r, plan, loop, i, seed, bpm, back) for i, (plan, loop) in enumerate(zip(plans, loops))]
    for song, character in zip(songs, chosen):
        if character:  # which training song it took its repeats from, and at what penalty
            song.meta["character"] = {k: character[k] for k in ("source", "file", "repeat_penalty")}
    return songs


def _song(model, r, plan, loop, index, seed, bpm, back):
    """The Song of one finished plan (and its loop's closing, if any)."""
    enc, vocab = model.enc, model.vocab
    if loop:  # the song the loop closes, with the closing's last bar
        plan, closing = loop.pop("plan"), loop.pop("tokens")
    tokens = [vocab.tokens[t] for t in (closing if loop else plan.song)]
    end = plan.length / GRID
    # a key-normalised model composes in C major / A minor: a primed song returns to the prime's key
    notes = [Note(n[0], min(n[1], end - n[0]), n[2] - back) for n in enc.decode(tokens) if 0 <= n[2] - back <= 127]
    key = reached = None
    if r.key and notes:
        shift, reached = to_key(notes, r.key)
        notes = [n._replace(pitch=n.pitch + shift) for n in notes if 0 <= n.pitch + shift <= 127]
        tonic, mode = parse_key(reached)
        key = Key(tonic, mode)
    track = Track(notes, name=r.instrument or "melody", program=r.program, role="melody")
    track.notes = track.playable()  # a long note the same pitch strikes again ends where it is struck
    return Song(tracks=[track], tempos=[(0.0, float(bpm))], key=key, length=end,
                sections=[Section(start / GRID, label) for start, label in plan.sections],
                loop=(plan.intro / GRID, end) if loop else None,
                meta={"seed": seed, "index": index + 1, "events": enc.events(tokens), "tokens": tokens,
                      "key": reached, "loop": loop,
                      "preroll": [vocab.tokens[t] for t in plan.tokens[:plan.skip]]})


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
