"""Rhythm calibration: a model's durations and waits drawn as often as its training songs hold them.

    python -m vgmusic calibrate --game final_fantasy_7 [--model-dir DIR] [--data-dir data] [--songs 20]

A network fine-tuned from the base model keeps some of the base corpus's rhythm: folk and fiddle tunes
move in even eighths, so Final Fantasy VII's model drew 68% of its melody's inter-onset intervals as
eighths and 12% as sixteenths, where its songs have 54% and 27%; a higher rhythm temperature spread the
draws onto dotted and long notes, not onto sixteenths (bench/results/judge-ff7-rt-*.md). This measures
the gap and closes it at the draw: it composes `songs` songs at the default settings, counts each
duration and wait token against the same tokens in the model's training songs (within its kind: a
duration among durations), and moves the logit offset of every rhythm token either side uses at least
FLOOR of the time STEP of the way to log(songs' share / drawn share), within +-LIMIT; then composes the
same songs (the same seed) with the offsets and corrects them again, `rounds` times (an offset changes
what comes after it, so one round overshoots some tokens and misses others). It settled on Final
Fantasy VII's model and not on the other three shipped ones (vgmusic/games.py, CALIBRATED: the figures).

    python -m vgmusic calibrate --game three_games_combined --style all

With --style, one prior per source of the model's training songs, each calibrated against that source's
songs alone and composed with its repeat penalty: `predict.py --style zelda_ocarina_of_time` then composes
with Zelda's rhythm. This is how the combined model chooses a game. Each game has a handful of songs, so
styles learned inside the network did not choose one (the README); a prior calibrated on one game's songs
moved a window classifier trained on the three games' own songs toward that game, for each of them
(bench/style.py, bench/results/style-priors.md).

Without --style it then measures each training song's repeat penalty, its character (vgmusic/characters.py),
composed with the offsets just found; --no-rhythm measures the characters alone, --characters 0 none.

The offsets are a prior over the rhythm vocabulary, not a new network: the network still decides
which rhythm fits where, and pitches are untouched. They live in the model's sidecar ("rhythm_prior",
or "style_priors" by source, with the weights' sha256 they were measured on, so new weights never inherit
them); `predict.py --rhythm-prior 0` composes without them, 1 (the default) as measured.
"""
import dataclasses
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np

from .characters import PER_SONG, calibrate_characters
from .encode import token_kind
from .sampling import prior_array

RHYTHM_KINDS = ("duration", "wait")  # the token kinds calibrated: a note's length and the time to the next

SONGS, ROUNDS = 20, 4  # CalibrateConfig's defaults, with their reasons
# events a calibration song: a default song's length. A rhythm drifts over a song, so songs half as long
# under-measured it: Final Fantasy VII's model calibrated on 250 events drew 40% sixteenths in default
# songs where its songs have 27% (28% calibrated on 500; bench/results/judge-wbase500-ff7-40.md)
EVENTS = 500
SMOOTH = 0.5  # counts added to every rhythm token on both sides: a token never drawn gets a finite offset
LIMIT = 2.0  # no offset past e^2, 7 times or a seventh as likely: the network keeps the last word
FLOOR = 0.01  # of its kind's tokens: rarer in the songs and in the draws, a rhythm keeps the network's odds
STEP = 0.7  # of the log-ratio a round: a full step overshot (an offset moves what follows it too)


def rhythm_counts(token_lists):
    """{kind: Counter of its tokens} over the rhythm kinds (duration, wait)."""
    counts = {kind: Counter() for kind in RHYTHM_KINDS}
    for tokens in token_lists:
        for t in tokens:
            kind = token_kind(t)
            if kind in counts:
                counts[kind][t] += 1
    return counts


def shares(counts, vocab_tokens):
    """{token: its share within its kind}, smoothed by SMOOTH over every token of the kind in the vocabulary."""
    out = {}
    for kind, counter in counts.items():
        names = [t for t in vocab_tokens if token_kind(t) == kind]
        total = sum(counter[t] for t in names) + SMOOTH * len(names)
        out.update({t: (counter[t] + SMOOTH) / total for t in names})
    return out


def corrected(bias, human, drawn):
    """The offsets after one round: each token the songs or the draws use at least FLOOR of its kind moved
    STEP of the way (in logits) to where the songs' share would be, log(songs' / drawn), then shifted
    within its kind so the kind's drawn tokens keep their total weight (the offsets move rhythm within a
    kind, not the choice between a note and a rest). A rhythm both use less is left as the network has it:
    a length the songs hold three times is theirs, not a style to force."""
    new = dict(bias)
    for kind in RHYTHM_KINDS:
        names = [t for t in human if token_kind(t) == kind and max(human[t], drawn[t]) >= FLOOR]
        moved = {t: bias.get(t, 0.0) + STEP * math.log(human[t] / drawn[t]) for t in names}
        if not moved:
            continue
        # what the moved tokens' drawn weight becomes; the others keep theirs
        norm = math.log(sum(drawn[t] * math.exp(moved[t] - bias.get(t, 0.0)) for t in names)
                        / sum(drawn[t] for t in names))
        for t in names:
            new[t] = max(-LIMIT, min(LIMIT, moved[t] - norm))
    return new


def calibrate(model, human_lists, sampling, songs=SONGS, rounds=ROUNDS, seed=0, report=print, style=""):
    """(offsets {token: logit}, [{round, shares drawn}]): `rounds` rounds of composing `songs` songs with
    `sampling` and the offsets so far, each correcting them towards the rhythm of `human_lists` (token lists).
    `style`: a source a --style model has a style token for, which every song then starts with."""
    from .compose import Request, compose
    human = shares(rhythm_counts(human_lists), model.vocab.tokens)
    bias, history = {}, []
    for r in range(rounds + 1):  # the last composing only measures
        prior = prior_array(bias, model.vocab) if bias else None
        # the same seed every round: the draws then move with the offsets, not with a new set of songs (a
        # rhythm one set of 20 songs never used, the next drew 11% of the time, at offsets 0.6 apart)
        # (no offsets at first: not even ones the model's sidecar already holds)
        round_sampling = dataclasses.replace(sampling, prior=prior, rhythm_prior=None if bias else 0.0)
        drawn_songs = compose(model, Request(num=songs, events=EVENTS, seed=seed, sampling=round_sampling,
                                             style=style if style in (model.meta.get("styles") or {}) else ""))
        drawn = shares(rhythm_counts(s.meta["tokens"] for s in drawn_songs), model.vocab.tokens)
        worst = max(human, key=lambda t: abs(drawn[t] - human[t]))
        gap = abs(drawn[worst] - human[worst])
        history.append({"round": r, "largest_gap": round(gap, 4), "token": worst})
        report(f"  round {r}: largest gap in a rhythm token's share within its kind: {worst} drawn "
               f"{drawn[worst]:.1%}, in the songs {human[worst]:.1%}")
        if r < rounds:
            bias = corrected(bias, human, drawn)
    return {t: round(b, 4) for t, b in bias.items()}, history


def calibrate_folder(folder, data_dir, songs=SONGS, rounds=ROUNDS, seed=0, style="", characters=PER_SONG,
                     rhythm=True):
    """Calibrate the model in `folder` against its training songs in `data_dir` and write the offsets into
    its sidecar (atomically); returns {name: offsets}. `style`: a source of its training songs (a unique
    prefix will do), or "all" for each: that source's songs are the target, its repeat penalty composes
    them, and the offsets go to the sidecar's style_priors, which `predict.py --style NAME` composes with.
    Without a style, each training song's character too (vgmusic/characters.py: `characters` songs composed
    per training song a round; 0: none), composed with the offsets just measured; `rhythm` False: no
    offsets (those the sidecar held are removed), only the characters, composed without any."""
    if not (rhythm or characters) or style and not rhythm:
        raise ValueError("nothing to calibrate: --no-rhythm measures only the characters (not with --style), "
                         "and --characters 0 none")
    from .checkpoint import SIDECAR, read_sidecar, write_together
    from .compose import load_model
    from .config import PredictConfig
    from .encode import load_songs
    from .games import DEFAULT_REPEAT_PENALTY, REPEAT_PENALTY
    from .predict import sampling_of
    folder = Path(folder)
    meta, _ = read_sidecar(folder)
    model = load_model(folder)
    trained = {(source, f) for source, f, _ in meta["songs"]["train"]}
    found = [s for s in load_songs(data_dir, meta["game"]) if (s.meta["source"], s.meta["file"]) in trained]
    if not found:
        raise ValueError(f"{data_dir}: none of {folder}'s training songs is here (run get_all_notes.py)")
    sources = sorted({s.meta["source"] for s in found})
    if style == "all":
        targets = sources
    elif style:
        targets = [n for n in sources if n == style] or [n for n in sources if n.startswith(style)]
        if len(targets) != 1:
            raise ValueError(f"--style {style!r}: {'ambiguous' if targets else 'unknown'}; {folder}'s training "
                             f"songs come from {', '.join(sources)}")
    else:
        targets = [""]  # the model's own rhythm, against all of its training songs
    written = {}
    for name in targets:
        mine = [s for s in found if s.meta["source"] == name] if name else found
        print(f"calibrating {folder}'s rhythm against its {len(mine)} training songs"
              + (f" from {name}" if name else ""), flush=True)
        sampling = sampling_of(PredictConfig())
        if name:  # composed as --style NAME composes: with that game's repeat penalty
            sampling = dataclasses.replace(sampling, repeat_penalty=REPEAT_PENALTY.get(name, DEFAULT_REPEAT_PENALTY))
        bias, history = calibrate(model, [model.enc.song_tokens(s) for s in mine], sampling, songs, rounds, seed,
                                  style=name) if rhythm else ({}, [])
        strongest = sorted(bias.items(), key=lambda kv: -abs(kv[1]))[:6]
        print(f"{len(bias)} rhythm offsets" + (f" for --style {name}" if name else "") + "; the strongest: "
              + ", ".join(f"{t} {b:+.2f}" for t, b in strongest) if rhythm else "no rhythm offsets (--no-rhythm)",
              flush=True)
        record = {"bias": bias, "weights_sha256": (meta.get("weights_sha256") or {}).get("best"), "songs": songs,
                  "rounds": rounds, "seed": seed, "events": EVENTS, "training_songs": len(mine), "history": history}
        if name:
            meta = dict(meta, style_priors=dict(meta.get("style_priors") or {}, **{name: record}))
        else:
            meta = dict(meta, rhythm_prior=record) if rhythm else {k: v for k, v in meta.items() if k != "rhythm_prior"}
            if characters:
                print(f"calibrating each of the {len(mine)} training songs' repeats", flush=True)
                drawn = dataclasses.replace(sampling, prior=prior_array(bias, model.vocab) if bias else None,
                                            rhythm_prior=None if bias else 0.0)
                found_characters = calibrate_characters(
                    model, [(s.meta["source"], s.meta["file"], model.enc.song_tokens(s)) for s in mine], drawn,
                    characters, rounds, seed)
                meta["characters"] = {"songs": found_characters, "weights_sha256": record["weights_sha256"],
                                      "per_song": characters, "rounds": rounds, "seed": seed, "events": EVENTS}
                penalties = sorted(c["repeat_penalty"] for c in found_characters)
                print(f"repeat penalties from {penalties[0]:.2f} to {penalties[-1]:.2f} "
                      f"(median {penalties[len(penalties) // 2]:.2f})", flush=True)
        written[name] = bias
    write_together(folder, {SIDECAR: json.dumps(meta, indent=1)})  # as training writes it, all at once
    print(f"wrote them into {folder / SIDECAR}")
    return written


def main(argv=None):
    from .cli import build, parser_for, run_command
    from .config import CalibrateConfig, default_model_dir

    def run():
        p = parser_for(CalibrateConfig, __doc__.split("\n\n")[0], prog="python -m vgmusic calibrate")
        cfg = build(CalibrateConfig, p.parse_args(argv))
        return calibrate_folder(cfg.model_dir or default_model_dir(cfg.game), cfg.data_dir, cfg.songs,
                                cfg.rounds, cfg.seed, cfg.style, cfg.characters, cfg.rhythm)
    return run_command(run, lambda: "the sidecar is as it was")
