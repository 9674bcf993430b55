"""Arrange a melody for an ensemble: melody, harmony, bass and drums, each its own track.

    song = arrange(melody_song, ensemble="chip", tracks=("melody", "harmony", "bass", "drums"), seed=1)
    song = regenerate(song, "bass", seed=7)                 # a new bass line, every other track kept
    song = regenerate(song, "drums", seed=3, bars=(5, 8))   # new drums in bars 5-8 only

The route is a learned chord model with learned bass and drum patterns (vgmusic.harmony,
vgmusic.arrange_parts, their data built by vgmusic.arrange_learn from the game corpora and Bach's chorales),
and theory for voicing and voice limits: no network, so arranging a 16-bar song costs milliseconds.

Both functions are pure: the song given is never changed, and the result depends only on it and the seed.
Each part draws from a generator of its own (numpy default_rng((seed, part))), so regenerating one part
with a new seed changes that part alone. The melody keeps every note, moved as a whole by the octaves that
bring it into the ensemble's melody register (meta["arrangement"]["melody_octaves"] says how many). A loop
stays seamless: nothing sounds past its end, and each part's last bar leads into bar 1.

song.meta["arrangement"]:
    ensemble     the ensemble's name (vgmusic.ensembles)
    tracks       the roles arranged, in track order ("melody", "harmony", "bass", "drums")
    instruments  {role: General MIDI program} as played
    key          "C major": the key harmonised in
    chords       per bar, the chords' Roman numerals ([["I"], ["IV", "V"], ...])
    spans        [[start beat, end beat, numeral]]: every chord as harmonised
    seeds        {role: seed} each part was made with
    melody_octaves  octaves the melody was moved (0: as composed)
    edits        [{"track": role, "seed": seed, "bars": [first, last] or null}]: regenerate()'s changes
"""
from dataclasses import replace

import numpy as np

from . import arrange_parts as parts
from .chords import NAMES
from .ensembles import DEFAULT_ENSEMBLE, ROLES, get_ensemble, with_instruments
from .harmony import harmonise
from .song import DRUM_CHANNEL, Key, Song, Track
from .theory import key_name, parse_key

CHANNELS = {"melody": 0, "harmony": 1, "bass": 2, "drums": DRUM_CHANNEL}
RESOLUTION = 48  # cells a beat when counting the voices sounding at once


def arrange(song, ensemble=DEFAULT_ENSEMBLE, tracks=None, instruments=None, seed=0):
    """A new Song: `song`'s melody and the accompaniment `tracks` (roles; default the ensemble's) played by
    `ensemble` (a name of vgmusic.ensembles.ENSEMBLES), `instruments` {role: name or program} overriding
    programs. The song's metre, tempo map, sections, loop and length are kept; see the module's docstring."""
    ens = with_instruments(get_ensemble(ensemble), instruments)
    roles = check_tracks(tracks, ens)
    source = song.melody()
    if source is None or not source.notes:
        raise ValueError(f"{song.title or 'the song'}: no melody to arrange (no pitched notes)")
    end = song.end
    octaves = melody_octaves(source.notes, ens.parts["melody"])
    # every note, as it was; one the move takes past MIDI's 0-127 (a melody spanning many octaves, as an
    # untrained model's does) goes back by octaves to the nearest it can be
    melody = [n._replace(pitch=in_midi_range(n.pitch + 12 * octaves)) for n in source.notes]
    key = (song.key.tonic, song.key.mode) if song.key else None
    (tonic, mode), chords = harmonise(song, melody, key, song.loop is not None)
    out = Song(tracks=[], tempos=list(song.tempos), metre=tuple(song.metre), key=Key(tonic, mode), length=end,
               sections=list(song.sections), loop=song.loop, title=song.title, meta=dict(song.meta))
    out.meta["arrangement"] = {
        "ensemble": ens.name, "tracks": list(roles),
        "instruments": {r: ens.parts[r].program for r in roles if r != "drums"},
        "key": key_name(tonic, mode), "chords": by_bar(chords, song.beats_per_bar, end),
        "spans": [[a, b, NAMES[c]] for a, b, c in chords], "seeds": {r: seed for r in roles if r != "melody"},
        "melody_octaves": octaves, "edits": []}
    ctx = parts.Context(out, chords, tonic, melody, song.loop is not None)
    for role in roles:
        if role == "melody":
            out.tracks.append(Track(melody, name=ens.parts["melody"].name or "melody",
                                    program=ens.parts["melody"].program, channel=CHANNELS["melody"], role="melody"))
        else:
            out.tracks.append(make_track(role, ctx, ens, roles, seed))
    limit_voices(out, ens, [r for r in ("harmony", "drums", "bass") if r in roles])
    return out


def check_tracks(tracks, ens):
    roles = tuple(tracks) if tracks else ens.default_tracks
    bad = [r for r in roles if r not in ROLES]
    if bad or not roles or len(set(roles)) != len(roles):
        raise ValueError(f"tracks {','.join(roles)}: each of {', '.join(ROLES)} at most once")
    return tuple(r for r in ROLES if r in roles)  # always in this order: channels and tracks stay put


def melody_octaves(notes, part, enough=0.25):
    """Octaves (-3..3) the melody moves: none while `enough` of its notes lie in the part's register (the
    melody is the song: it stays as composed wherever it can), else those bringing the most notes in."""
    inside = lambda k: sum(part.low <= n.pitch + 12 * k <= part.high for n in notes)  # noqa: E731
    if inside(0) >= enough * len(notes):
        return 0
    return max(range(-3, 4), key=lambda k: (inside(k), -abs(k)))


def in_midi_range(pitch):
    """The pitch moved by whole octaves into MIDI's 0-127: the same pitch class, as near as it can be."""
    while pitch > 127:
        pitch -= 12
    while pitch < 0:
        pitch += 12
    return pitch


def by_bar(chords, bar, end):
    out = [[] for _ in range(max(1, int(round(end / bar))))]
    for a, b, c in chords:
        for i in range(int(a // bar), min(len(out), int(np.ceil(b / bar - 1e-9)))):
            if not out[i] or out[i][-1] != NAMES[c] or abs(a - i * bar) < 1e-9:
                out[i].append(NAMES[c])
    return out


def part_rng(seed, role):
    return np.random.default_rng((int(seed), ROLES.index(role)))


def make_track(role, ctx, ens, roles, seed):
    part, rng = ens.parts[role], part_rng(seed, role)
    if role == "harmony":
        notes = parts.harmony(ctx, part, rng)
    elif role == "bass":
        notes = parts.bass(ctx, part, rng)
    else:
        notes = parts.drums(ctx, part, ens.kit, rng, ens.one_drum)
    notes = fit(notes, ctx.end, part.voices if role != "drums" else 0, ens.one_drum and role == "drums")
    return Track(notes, name=part.name or role, program=0 if role == "drums" else part.program,
                 channel=CHANNELS[role], drum=role == "drums", role=role)


def fit(notes, end, voices, mono=False):
    """Notes sorted, inside the song (nothing sounds past its end: a loop's seam stays clean), one pitch at
    a time, and with `voices` 1 (or `mono`) each note ending where the next begins."""
    out = sorted(n._replace(duration=min(n.duration, end - n.onset)) for n in notes if n.onset < end - 1e-9)
    if voices == 1 or mono:
        out = [n._replace(duration=min(n.duration, nxt.onset - n.onset)) if nxt.onset > n.onset else n
               for n, nxt in zip(out, out[1:] + [out[-1]._replace(onset=end)])] if out else out
        dedup = {}
        for n in out:  # one note an onset: the first (lowest) kept
            dedup.setdefault(round(n.onset * RESOLUTION), n)
        out = sorted(dedup.values())
    return Track(out).playable()


def limit_voices(song, ens, order, only=None):
    """At most ens.max_voices notes sounding at once over every track, and at most a group's voices over
    its roles (ens.groups: the chip's two pulse channels shared by melody and harmony). The melody is never
    touched; the accompaniment's notes (roles in `order`, the first given up first; `only`: just that role)
    are cut short, or left out, where they would pass a limit."""
    limits = ([(set(ROLES), ens.max_voices)] if ens.max_voices else []) + [(set(r), v) for r, v in ens.groups]
    if not limits:
        return
    cells = int(np.ceil(song.end * RESOLUTION)) + 1
    # plain lists: a note spans a dozen cells, where a NumPy call costs more than the looking
    counts = [[0] * cells for _ in limits]

    def span(n):
        a = round(n.onset * RESOLUTION)
        return a, max(a + 1, round((n.onset + n.duration) * RESOLUTION))

    def add(count, a, b):
        for i in range(a, min(b, cells)):  # as a NumPy slice would, nothing past the last cell
            count[i] += 1
    fixed = [t for t in song.tracks if t.role not in order or (only and t.role != only)]
    for t in fixed:
        for n in t.notes:
            a, b = span(n)
            for (roles, _), count in zip(limits, counts):
                if t.role in roles:
                    add(count, a, b)
    by_role = {t.role: t for t in song.tracks}
    for role in reversed(order):  # the last given up first is placed first
        track = by_role.get(role)
        if track is None or track in fixed:
            continue
        mine = [(count, voices) for (roles, voices), count in zip(limits, counts) if role in roles]
        kept = []
        for n in track.notes:
            a, b = span(n)
            stop = b
            for count, voices in mine:  # the first cell already full
                stop = next((i for i in range(a, min(stop, cells)) if count[i] >= voices), stop)
            if stop < b:
                if stop - a < RESOLUTION // 8:  # shorter than a 32nd: left out
                    continue
                n, b = n._replace(duration=(stop - a) / RESOLUTION), stop
            for count, _ in mine:
                add(count, a, b)
            kept.append(n)
        track.notes = kept


def regenerate(song, role, seed, bars=None):
    """A new Song with one part (`role`) made again from `seed`, every other track note for note as it was;
    `bars` (first, last), counted from 1, changes only those bars of that part. The song must be an
    arrangement (its meta["arrangement"], which arrange() writes and song.json records keep); the record
    gains an entry in "edits"."""
    record = (song.meta or {}).get("arrangement")
    if not record:
        raise ValueError(f"{song.title or 'the song'}: not an arrangement (no meta['arrangement']); arrange it first")
    if role not in ROLES or role == "melody":
        raise ValueError(f"--track {role}: choose harmony, bass or drums (the melody is composed, not arranged)")
    ens = get_ensemble(record["ensemble"])
    programs = record["instruments"]
    ens = replace(ens, parts={r: replace(p, program=programs.get(r, p.program)) for r, p in ens.parts.items()})
    bar = song.beats_per_bar
    total = max(1, int(round(song.end / bar)))
    if bars is not None:
        first, last = bars
        if not 1 <= first <= last <= total:
            raise ValueError(f"--bars-to-edit {first}-{last}: the song has bars 1-{total}")
    index = {n: i for i, n in enumerate(NAMES)}
    chords = [(a, b, index[name]) for a, b, name in record["spans"]]
    tonic = parse_key(record["key"])[0]
    roles = record["tracks"] if role in record["tracks"] else sorted(set(record["tracks"]) | {role}, key=ROLES.index)
    melody = next((t.notes for t in song.tracks if t.role == "melody"), None) or song.melody().notes
    ctx = parts.Context(song, chords, tonic, melody, song.loop is not None)
    new = make_track(role, ctx, ens, roles, seed)
    out = Song(tracks=[replace(t, notes=list(t.notes)) for t in song.tracks], tempos=list(song.tempos),
               metre=song.metre, key=song.key, length=song.length, sections=list(song.sections), loop=song.loop,
               title=song.title, meta={**song.meta, "arrangement": {**record, "tracks": list(roles)}})
    old = next((t for t in out.tracks if t.role == role), None)
    if bars is not None and old is not None:
        a, b = (first - 1) * bar, last * bar
        keep = [n._replace(duration=min(n.duration, a - n.onset)) if n.onset < a else n
                for n in old.notes if n.onset < a or n.onset >= b - 1e-9]
        new.notes = sorted(keep + [n._replace(duration=min(n.duration, b - n.onset))
                                   for n in new.notes if a - 1e-9 <= n.onset < b])
    if old is not None:
        out.tracks[out.tracks.index(old)] = replace(new, name=old.name, channel=old.channel, program=old.program)
    else:
        out.tracks.append(new)
        out.tracks.sort(key=lambda t: ROLES.index(t.role) if t.role in ROLES else len(ROLES))
    limit_voices(out, ens, [role], only=role)
    arr = out.meta["arrangement"]
    arr["seeds"] = {**arr.get("seeds", {}), **({role: seed} if bars is None else {})}
    arr["edits"] = list(arr.get("edits", [])) + [{"track": role, "seed": seed, "bars": list(bars) if bars else None}]
    return out
