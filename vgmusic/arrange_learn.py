"""Learn the arranger's data (vgmusic/arrangement_data.json) from the installed corpora:

    python -m vgmusic.arrange_learn            # rewrites vgmusic/arrangement_data.json (about a minute)

What is learned, and from what (every source's licence is recorded in the JSON):
  - chord changes and how long chords last: the game corpora (Debian's freedoom, BSD; openttd-openmsx,
    GPL-2; planetblupi-music-midi, GPL-3), each half bar's chord recognised from its accompaniment (every
    pitched track but the melody), relative to the song's key; and Bach's chorales (music21's corpus,
    public domain), a chord a beat, for functional harmony and for cadences (their fermatas end phrases);
  - what a melody does over a chord (its pitch classes relative to the chord's root, weighted by duration
    and metrical strength): the games' melodies and the chorales' sopranos over the chords beneath them;
  - bass patterns (per bar, on a 16th grid: each note's onset, length and relation to its chord), drum
    grooves and fills (per bar, a 16th grid per kind of drum, with velocities), and comping rhythms of
    chord tracks: the game corpora. Only statistics and bar-long patterns are kept, never a song.
Rebuilding is deterministic: sources are read in sorted order and every table is sorted.
"""
import sys
from collections import Counter, defaultdict
from pathlib import Path

from .chords import CHORDS, NAMES, QUALITIES, recognise
from .theory import estimate_key

OUT = Path(__file__).with_name("arrangement_data.json")
FORMAT = 1
GAMES = ("freedoom", "openttd", "planetblupi")
STEPS = {(4, 4): 16, (3, 4): 12}  # metres with learned patterns: 16th steps per bar
KEEP_PATTERNS = 60  # most shared patterns kept per kind and metre (the JSON stays under 100 KB)
MIN_EXPLAINED = 0.5  # a half bar whose best chord explains less of its notes is no chord (not counted)
# General MIDI drum keys -> the arranger's kinds of drum (a kit maps each kind back to a key)
DRUM_KINDS = {35: "kick", 36: "kick", 37: "snare", 38: "snare", 39: "clap", 40: "snare", 42: "hat", 44: "hat",
              46: "open", 49: "crash", 57: "crash", 52: "crash", 55: "crash", 51: "ride", 53: "ride", 59: "ride",
              41: "tom_low", 43: "tom_low", 45: "tom_mid", 47: "tom_mid", 48: "tom_high", 50: "tom_high",
              54: "tambourine", 56: "cowbell", 69: "shaker", 70: "shaker", 82: "shaker"}


def game_songs():
    """(source, Song) of every installed game corpus, sorted; a missing package is skipped with a note."""
    from .corpora import DEBIAN, package_files, wad_music
    from .fetch import Failed
    from .midi import midi_to_song, parse_bytes, read_midi
    out = []
    for name in GAMES:
        package, folder = DEBIAN[name]
        try:
            files = package_files(package, folder, (".wad",) if name == "freedoom" else (".mid", ".midi"))
        except Failed as e:
            print(f"note: {e}", file=sys.stderr)
            continue
        for f in files:
            try:
                if name == "freedoom":
                    out += [(name, midi_to_song(parse_bytes(data))) for _, kind, data in wad_music(f) if kind == "midi"]
                else:
                    out.append((name, read_midi(f)))
            except ValueError as e:
                print(f"note: skipped {f}: {e}", file=sys.stderr)
    return out


def bass_track(song):
    """The song's bass line: its lowest pitched track playing mostly one note at a time, below MIDI 52."""
    best = None
    for t in song.pitched():
        mean = sum(n.pitch for n in t.notes) / len(t.notes)
        onsets = Counter(round(n.onset * 4) for n in t.notes)
        mono = sum(1 for c in onsets.values() if c == 1) / len(onsets)
        if mean < 52 and mono > 0.8 and len(t.notes) >= song.bars and (best is None or mean < best[0]):
            best = (mean, t)
    return best and best[1]


def weights(notes, start, end, metric=False):
    """12 pitch-class weights of the notes sounding in [start, end): their overlap in beats, each note's
    weight doubled on a beat (metrical strength, with `metric`)."""
    w = [0.0] * 12
    for n in notes:
        overlap = min(end, n.onset + n.duration) - max(start, n.onset)
        if overlap > 0:
            w[n.pitch % 12] += overlap * (2.0 if metric and abs(n.onset - round(n.onset)) < 1e-6 else 1.0)
    return w


def rel(w, tonic):
    return w[tonic:] + w[:tonic]


def song_chords(song, tonic, mode, exclude=(), slot=2.0):
    """The recognised chord (index, or None) of each `slot` beats of the song, from its pitched tracks
    but those in `exclude`."""
    notes = [n for t in song.pitched() if t not in exclude for n in t.notes]
    bass = bass_track(song)
    out = []
    for i in range(int(song.end // slot)):
        w = rel(weights(notes, i * slot, (i + 1) * slot), tonic)
        b = rel(weights(bass.notes, i * slot, (i + 1) * slot), tonic) if bass and bass not in exclude else None
        if sum(w) < 1e-9:
            out.append(None)
            continue
        c, explained = recognise(w, b, mode)
        out.append(c if explained >= MIN_EXPLAINED else None)
    return out


class Tables:
    """Counts gathered over the corpora, turned into the JSON's tables by result()."""

    def __init__(self):
        n = len(CHORDS)
        self.change = {m: {s: [[0.0] * n for _ in range(n)] for s in ("games", "chorales")} for m in ("major", "minor")}
        self.stay = {m: {"mid": [0, 0], "bar": [0, 0]} for m in ("major", "minor")}  # [stayed, slots]
        self.start = {m: [0.0] * n for m in ("major", "minor")}
        self.cadence = {m: [0.0] * n for m in ("major", "minor")}
        self.emission = {q: {s: [0.0] * 12 for s in ("games", "chorales")} for q in QUALITIES}
        # pattern -> [songs using it, bars]: ranked by songs first, so one song repeating one bar a hundred
        # times does not outrank a pattern twenty songs share
        self.bass, self.grooves, self.fills, self.comping = (defaultdict(lambda: defaultdict(lambda: [0, 0, {}]))
                                                             for _ in range(4))
        self.song = 0  # which song is being counted
        self.velocity = defaultdict(list)
        self.crash_after_fill = [0, 0]
        self.used = Counter()
        self.last = {}

    def count(self, table, pattern, velocities=None):
        """One more bar of `pattern`; `velocities` {(kind, step): velocity} summed for the mean."""
        entry = table[pattern]
        if entry[1] == 0 or self.last.get(id(table), {}).get(pattern) != self.song:
            entry[0] += 1
            self.last.setdefault(id(table), {})[pattern] = self.song
        entry[1] += 1
        for k, v in (velocities or {}).items():
            entry[2][k] = entry[2].get(k, 0) + v

    def add_melody(self, source, chord, w):
        root, quality = CHORDS[chord]
        for pc in range(12):
            self.emission[quality][source][(pc - root) % 12] += w[pc]

    # --- games -----------------------------------------------------------------------------------------
    def add_game(self, name, song):
        melody = song.melody()
        if melody is None or song.end < 8 * song.beats_per_bar:
            return
        tonic, mode = estimate_key(song.notes())
        self.used[name] += 1
        self.song += 1
        chords = song_chords(song, tonic, mode, exclude=(melody,))
        prev = None
        for i, c in enumerate(chords):
            if c is None:
                prev = None
                continue
            self.add_melody("games", c, rel(weights(melody.notes, 2 * i, 2 * i + 2, metric=True), tonic))
            if prev is not None:
                where = "bar" if (2 * i) % song.beats_per_bar == 0 else "mid"
                self.stay[mode][where][0] += c == prev
                self.stay[mode][where][1] += 1
                if c != prev:
                    self.change[mode]["games"][prev][c] += 1
            prev = c
        first = next((c for c in chords if c is not None), None)
        if first is not None:
            self.start[mode][first] += 1
        steps = STEPS.get(tuple(song.metre))
        if steps:
            self.add_patterns(song, chords, tonic, steps, melody)

    def add_patterns(self, song, chords, tonic, steps, melody):
        metre, bar_beats = f"{song.metre[0]}/{song.metre[1]}", song.beats_per_bar
        bars = int(song.end // bar_beats)
        bass = bass_track(song)
        grid = steps / bar_beats  # steps a beat
        if bass is not None:
            by_bar = defaultdict(list)
            for n in bass.notes:
                by_bar[int(n.onset // bar_beats)].append(n)
            for b, notes in sorted(by_bar.items()):
                pattern = bass_pattern(notes, b * bar_beats, grid, steps, chords, tonic)
                if pattern and pattern[0][0] < steps // 4:  # a bar's bass starts in its first beat
                    self.count(self.bass[metre], pattern)
        drums = [t for t in song.tracks if t.drum and t.notes]
        if drums:
            bar_patterns = drum_bars(drums, bars, bar_beats, grid, steps, self.velocity)
            for b, p in enumerate(bar_patterns):
                if not p:
                    continue
                nxt = bar_patterns[b + 1] if b + 1 < bars else None
                # a fill: the last bar of a 4-bar phrase, unlike the bar before it, the next bar opening with
                # a crash (how these songs mark a phrase boundary)
                boundary = (b + 1) % 4 == 0 and nxt and ("crash", 0) in nxt
                if boundary:
                    self.crash_after_fill[1] += 1
                if boundary and b and set(p) != set(bar_patterns[b - 1]):
                    self.count(self.fills[metre], tuple(sorted(p)), p)
                    self.crash_after_fill[0] += 1
                else:
                    groove = {k: v for k, v in p.items() if k[0] != "crash"}
                    # a groove has a kick or a snare and three hits at least (sparser bars are endings, gaps)
                    if len(groove) >= 3 and any(k[0] in ("kick", "snare") for k in groove):
                        self.count(self.grooves[metre], tuple(sorted(groove)), groove)
        for t in song.pitched():
            if t is melody or t is bass:
                continue
            by_bar = defaultdict(list)
            for n in t.notes:
                by_bar[int(n.onset // bar_beats)].append(n)
            for b, notes in sorted(by_bar.items()):
                onsets = Counter(round((n.onset - b * bar_beats) * grid) for n in notes)
                if sum(1 for c in onsets.values() if c >= 2) >= max(1, len(onsets) // 2):  # a chord track
                    rhythm = tuple(sorted({(s, max(1, min(steps - s, round(n.duration * grid))))
                                           for n in notes for s in [round((n.onset - b * bar_beats) * grid)]
                                           if onsets[s] >= 2 and s < steps}))
                    rhythm = tuple(dict(rhythm).items())  # one length an onset
                    if rhythm:
                        self.count(self.comping[metre], rhythm)

    # --- chorales --------------------------------------------------------------------------------------
    def add_chorale(self, parts, fermatas):
        """parts: [(onset, duration, pitch)] per voice, soprano first; fermatas: onsets of phrase ends."""
        notes = [n for p in parts for n in p]
        from .song import Note
        tonic, mode = estimate_key([Note(o, d, p) for o, d, p in notes])
        self.used["chorales"] += 1
        lower = [Note(o, d, p) for part in parts[1:] for o, d, p in part]
        soprano = [Note(o, d, p) for o, d, p in parts[0]]
        bass = [Note(o, d, p) for o, d, p in parts[-1]]
        end = max(o + d for o, d, _ in notes)
        prev, first = None, None
        for beat in range(int(end)):
            w = rel(weights(lower, beat, beat + 1), tonic)
            if sum(w) < 1e-9:
                continue
            c, explained = recognise(w, rel(weights(bass, beat, beat + 1), tonic), mode)
            if explained < MIN_EXPLAINED:
                prev = None
                continue
            first = c if first is None else first
            self.add_melody("chorales", c, rel(weights(soprano, beat, beat + 1, metric=True), tonic))
            if prev is not None and c != prev:
                self.change[mode]["chorales"][prev][c] += 1
            if any(beat <= f < beat + 1 for f in fermatas):
                self.cadence[mode][c] += 1
            prev = c
        if first is not None:
            self.start[mode][first] += 1

    # --- the JSON --------------------------------------------------------------------------------------
    def result(self):
        def norm(row, alpha=0.0):
            total = sum(row) + alpha * len(row)
            return [round((x + alpha) / total, 5) if total else 0.0 for x in row]

        def patterns(table):
            """The most shared patterns; a drum pattern's hits as [kind, step, mean velocity]."""
            ranked = sorted(table.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:KEEP_PATTERNS]
            return [{"notes": [list(x) + ([round(c[2][x] / c[1])] if c[2] else []) for x in p], "songs": c[0],
                     "bars": c[1]} for p, c in ranked]
        modes = {}
        for m in ("major", "minor"):
            g, ch = self.change[m]["games"], self.change[m]["chorales"]
            # each source counts equally: the games for the chords game music uses, the chorales for how
            # functional harmony moves (their rows scaled to the games' total)
            gs, cs = sum(map(sum, g)) or 1.0, sum(map(sum, ch)) or 1.0
            rows = [[g[i][j] / gs + ch[i][j] / cs for j in range(len(CHORDS))] for i in range(len(CHORDS))]
            usage = [sum(r) + sum(rows[j][i] for j in range(len(CHORDS))) for i, r in enumerate(rows)]
            modes[m] = {"change": [norm(r, 1e-4) for r in rows], "usage": norm(usage),
                        "stay": {k: round(v[0] / v[1], 4) if v[1] else 0.5 for k, v in self.stay[m].items()},
                        "start": norm(self.start[m], 0.1), "cadence": norm(self.cadence[m], 0.1)}
        emission = {q: norm([a / (sum(s["games"]) or 1) + b / (sum(s["chorales"]) or 1)
                             for a, b in zip(s["games"], s["chorales"])], 0.01) for q, s in self.emission.items()}
        velocity = {k: round(sum(v) / len(v)) for k, v in sorted(self.velocity.items())}
        return {
            "format": FORMAT,
            "made_by": "python -m vgmusic.arrange_learn",
            "sources": {
                "freedoom": "BSD-3-Clause (Debian package freedoom, /usr/share/doc/freedoom/copyright): chord "
                            "statistics, melody-over-chord statistics, bass patterns, drum grooves and fills, comping",
                "openttd": "GPL-2.0 (Debian package openttd-openmsx): the same statistics and bar patterns, "
                           "derived from its songs (no song is kept)",
                "planetblupi": "GPL-3.0-or-later (Debian package planetblupi-music-midi): the same statistics "
                               "and bar patterns, derived from its songs (no song is kept)",
                "chorales": "public domain music (Bach), music21's corpus encoding: chord changes, cadences, "
                            "soprano-over-chord statistics",
            },
            "songs": dict(sorted(self.used.items())),
            "chords": [[r, q, n] for (r, q), n in zip(CHORDS, NAMES)],
            "modes": modes, "emission": emission,
            "bass": {m: patterns(c) for m, c in sorted(self.bass.items())},
            "grooves": {m: patterns(c) for m, c in sorted(self.grooves.items())},
            "fills": {m: patterns(c) for m, c in sorted(self.fills.items())},
            "comping": {m: patterns(c) for m, c in sorted(self.comping.items())},
            "drum_velocity": velocity,
            "crash_after_fill": round(self.crash_after_fill[0] / max(1, self.crash_after_fill[1]), 3),
        }


def bass_pattern(notes, bar_start, grid, steps, chords, tonic):
    """A bar of bass as ((step, length, relation, octave), ...): relation to the chord sounding at the note
    (R root, 3 third, 5 fifth, 7 seventh, A a step into the next chord's root, P any other passing note),
    octave against the bar's first root (-1, 0, 1)."""
    out, ref = [], None
    for n in sorted(notes):
        step = round((n.onset - bar_start) * grid)
        if not 0 <= step < steps:
            continue
        slot = int(n.onset // 2)
        c = chords[slot] if slot < len(chords) else None
        if c is None:
            return None
        root = (tonic + CHORDS[c][0]) % 12
        interval = (n.pitch - root) % 12
        label = {0: "R", 3: "3", 4: "3", 7: "5", 10: "7", 11: "7"}.get(interval)
        nxt = next((chords[j] for j in range(slot + 1, len(chords)) if chords[j] is not None), None)
        if label is None or label == "7" and CHORDS[c][1] != "7":
            approach = nxt is not None and min((n.pitch - tonic - CHORDS[nxt][0]) % 12,
                                               (tonic + CHORDS[nxt][0] - n.pitch) % 12) <= 2
            label = "A" if approach else "P"
        if ref is None:
            ref = n.pitch - (interval if label in "R357" else 0)
        octave = max(-1, min(1, round((n.pitch - ref - (interval if label in "R357" else 0)) / 12)))
        out.append((step, max(1, min(steps - step, round(n.duration * grid))), label, octave))
    return tuple(dict(((s, (s, d, lab, o)) for s, d, lab, o in out)).values()) or None


def drum_bars(tracks, bars, bar_beats, grid, steps, velocity):
    """Each bar of the drum tracks as {(kind, step): velocity}, the loudest where several strike."""
    out = [{} for _ in range(bars)]
    for t in tracks:
        for n in t.notes:
            b, kind = int(n.onset // bar_beats), DRUM_KINDS.get(n.pitch)
            step = round((n.onset - b * bar_beats) * grid)
            if kind and b < bars and step < steps:
                out[b][kind, step] = max(out[b].get((kind, step), 0), n.velocity)
                velocity[kind].append(n.velocity)
    return out


def chorales():
    """[(parts, fermatas)] of music21's Bach chorales (four parts), in Riemenschneider's order."""
    import warnings

    from music21 import converter, corpus, expressions
    names = list(dict.fromkeys(corpus.chorales.Iterator(numberingSystem="riemenschneider", returnType="filename")))
    out = []
    for name in names:
        found = corpus.getWork(name)
        path = found[0] if isinstance(found, list) else found
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                score = converter.parse(path, forceSource=True, storePickle=False)
            except Exception as e:  # music21 raises many kinds on a damaged file
                print(f"note: skipped chorale {name}: {e}", file=sys.stderr)
                continue
        if len(score.parts) != 4:
            continue
        parts, fermatas = [], []
        for i, part in enumerate(score.parts):
            notes = []
            for n in part.flatten().notes:
                if n.isChord:
                    continue
                on = float(n.offset)
                notes.append((on, float(n.quarterLength), n.pitch.midi))
                if i == 0 and any(isinstance(e, expressions.Fermata) for e in n.expressions):
                    fermatas.append(on)
            parts.append(notes)
        if all(parts):
            out.append((parts, fermatas))
    return out


def main():
    import json

    from .store import atomic_path
    tables = Tables()
    for name, song in game_songs():
        tables.add_game(name, song)
    for parts, fermatas in chorales():
        tables.add_chorale(parts, fermatas)
    data = tables.result()
    with atomic_path(OUT) as tmp:
        tmp.write_text(json.dumps(data, separators=(",", ":"), sort_keys=True))
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB) from {data['songs']}")


if __name__ == "__main__":
    main()
