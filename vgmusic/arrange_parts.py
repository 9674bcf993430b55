"""The accompaniment's parts, each from the chords (vgmusic.harmony), the melody and a random generator:
harmony (voiced chords or arpeggios), bass (learned bar patterns) and drums (learned grooves and fills).
vgmusic.arrange puts them together; nothing here knows about tracks or channels.

Every part keeps the form: a section's theme (its label without "'") gets one pattern, kept bar to bar,
so A and A' sound alike and B differs; its last bar leads into what follows (an approach note in the bass,
a fill in the drums), and a loop's last bar leads into bar 1 as into any section.
"""
import bisect

from .chords import CHORDS, QUALITIES
from .harmony import data
from .song import Note

HAT_KINDS = ("hat", "open", "ride")
ONE_DRUM_ORDER = ("kick", "snare", "clap", "crash", "tom_low", "tom_mid", "tom_high", "open", "hat", "ride")
FILL_CHANCE = 0.25  # a section's last bar is a fill this often (a loop's last bar always is)
VARY_CHANCE = 0.6  # a bar inside a section varies its groove's last beat this often
CLASH = 1  # semitones: a chord tone this close to a melody note sounding with it (and not equal) clashes


class Context:
    """What every part reads: the song's bars and sections, its chords, its melody, the key."""

    def __init__(self, song, chords, tonic, melody_notes, loop):
        self.bar, self.end, self.loop, self.tonic = song.beats_per_bar, song.end, loop, tonic
        self.loop_start = song.loop[0] if song.loop else 0.0  # after an intro, where the loop comes back to
        self.metre = f"{song.metre[0]}/{song.metre[1]}"
        self.bars = max(1, int(round(self.end / self.bar)))
        self.chords = chords  # [(start, end, chord index)]
        self.starts = [c[0] for c in chords]
        self.melody = sorted(melody_notes)
        # melody_between looks only among the notes starting from the longest note's length before its
        # span to its end (found by bisection): a scan of the whole melody per chord was quadratic
        self._onsets = [n.onset for n in self.melody]
        self._longest = max((n.duration for n in self.melody), default=0.0)
        self.sections = self._sections(song)

    def _sections(self, song):
        """[(first bar, last bar + 1, theme)], 4-bar phrases where the song has no sections."""
        marks = [(int(round(s.start / self.bar)), s.label.rstrip("'")) for s in song.sections]
        marks = [m for m in marks if m[0] < self.bars] or [(b, f"phrase{b // 4}") for b in range(0, self.bars, 4)]
        if marks[0][0] > 0:
            marks.insert(0, (0, "intro"))
        return [(a, b, t) for (a, t), (b, _) in zip(marks, marks[1:] + [(self.bars, "")]) if b > a]

    def chord_at(self, beat):
        i = max(0, bisect.bisect_right(self.starts, beat + 1e-9) - 1)
        return self.chords[i]

    def next_chord(self, beat):
        """The chord after the one sounding at `beat`: for a loop's last chord, the one its loop starts on
        (the song's first, or the body's after an intro)."""
        i = bisect.bisect_right(self.starts, beat + 1e-9)
        if i < len(self.chords):
            return self.chords[i]
        return self.chord_at(self.loop_start) if self.loop else self.chords[-1]

    def melody_between(self, a, b):
        """The melody notes sounding between beats a and b, in the melody's order."""
        lo = bisect.bisect_left(self._onsets, a - self._longest - 1e-6)  # every note before ends before a
        hi = bisect.bisect_left(self._onsets, b - 1e-9)  # every note from here on starts at b or later
        return [n for n in self.melody[lo:hi] if n.onset + n.duration > a + 1e-9]

    def steps(self):
        return {"4/4": 16, "3/4": 12}.get(self.metre)


def pcs(chord, tonic):
    root, quality = CHORDS[chord]
    return [(tonic + root + i) % 12 for i in QUALITIES[quality]]


def weighted(rng, items, weight):
    """One item drawn with probability proportional to weight(item)."""
    w = [max(1e-9, float(weight(x))) for x in items]
    total = sum(w)
    return items[int(rng.choice(len(items), p=[x / total for x in w]))]


def themed(ctx, rng, choose):
    """{theme: choose(rng)} for each theme in order of first appearance: one choice per theme."""
    out = {}
    for _, _, theme in ctx.sections:
        if theme not in out:
            out[theme] = choose(rng)
    return out


# --- harmony -----------------------------------------------------------------------------------------------

def voicings(chord, tonic, low, high, voices):
    """Close and open positions of a chord within low..high, `voices` notes (the root doubled past a triad)."""
    tones = pcs(chord, tonic)
    n = min(voices, len(tones)) if voices < 3 else max(min(voices, 4), 3)
    out = []
    for inversion in range(len(tones)):
        order = tones[inversion:] + tones[:inversion]
        order = (order + order)[:n]
        for base in range(low, high - 6):
            if base % 12 != order[0]:
                continue
            stack = [base]
            for pc in order[1:]:
                p = stack[-1] + 1
                while p % 12 != pc:
                    p += 1
                stack.append(p)
            if stack[-1] <= high:
                out.append(tuple(stack))
    return out or [(low + (tones[0] - low) % 12,)]


def voice_cost(v, prev, melody, centre):
    """How far the voices move from the previous voicing, and how they sit under the melody: a tone a
    semitone from a melody note, the melody's own pitch, or a tone above the melody costs."""
    if prev and len(prev) == len(v):
        cost = sum(abs(a - b) for a, b in zip(v, prev))
    else:  # the first chord: near the register's middle
        cost = 0.3 * abs(sum(v) / len(v) - centre)
    for m in melody:
        for p in v:
            d = abs(p - m)
            cost += 6.0 if d == CLASH or d == 0 else 0.0
            cost += 3.0 if p > m else 0.0
    return cost


def voiced_chords(ctx, part):
    """[(start, end, voicing)] per chord span, each nearest the one before (voice leading)."""
    out, prev, centre = [], None, (part.low + part.high) / 2
    for start, end, chord in ctx.chords:
        melody = {n.pitch for n in ctx.melody_between(start, end)}
        best = min(voicings(chord, ctx.tonic, part.low, part.high, max(3, part.voices)),
                   key=lambda v: voice_cost(v, prev, melody, centre))
        out.append((start, end, best))
        prev = best
    return out


ARPEGGIOS = {"up": (0, 1, 2, 3), "updown": (0, 1, 2, 3, 2, 1), "alberti": (0, 2, 1, 2), "down": (3, 2, 1, 0)}


def harmony(ctx, part, rng):
    """The harmony part in the ensemble's style (ensembles.Part.style)."""
    voiced = voiced_chords(ctx, part)
    vel = part.velocity
    notes = []
    if part.style == "pad":  # held chords, struck again at each bar line so a long chord does not fade away
        for start, end, v in voiced:
            t = start
            while t < end - 1e-9:
                stop = min(end, (int(t / ctx.bar + 1e-9) + 1) * ctx.bar)
                notes += [Note(t, stop - t, p, vel) for p in v]
                t = stop
        return notes
    if part.style == "arpeggio":
        shapes = themed(ctx, rng, lambda r: (list(ARPEGGIOS)[int(r.integers(len(ARPEGGIOS)))],
                                             0.25 if r.random() < 0.6 else 0.5))
        starts = [x[0] for x in voiced]
        for a, b, theme in ctx.sections:
            shape, step = shapes[theme]
            t = a * ctx.bar
            while t < b * ctx.bar - 1e-9:
                _, _, v = voiced[bisect.bisect_right(starts, t + 1e-9) - 1]
                tones = list(v) + [v[0] + 12] if len(v) < 4 else list(v)
                index = ARPEGGIOS[shape][int(round(t / step)) % len(ARPEGGIOS[shape])] % len(tones)
                pitch = tones[index]
                pitch -= 12 * (pitch > part.high)
                # with a second voice (the chip's idle pulse) each note rings into the next
                accent = 12 if abs(t % 1) < 1e-6 else 0
                notes.append(Note(t, step * min(2, part.voices), pitch, min(127, vel + accent)))
                t += step
        return notes
    if part.style == "broken":  # a left hand: the chord broken in eighths (Alberti: low, high, middle, high),
        # spread open (root, fifth, the third an octave up) as a pianist's hand reaches
        for start, end, v in voiced:
            spread = sorted(v[:1] + v[2:3] + tuple(p + 12 for p in v[1:2]))
            spread = [p - 12 if p > part.high else p for p in spread]
            t = start
            while t < end - 1e-9:
                i = int(round((t % ctx.bar) / 0.5))
                # the figure's low note is held under the rest of it, as the hand (and the pedal) hold it
                length = 0.5 * (4 - i % 4) if i % 4 == 0 else 0.5
                notes.append(Note(t, min(length, end - t), spread[(0, 2, 1, 2)[i % 4]], vel + 8 * (i % 4 == 0)))
                t += 0.5
        return notes
    # block and power: chords struck in a comping rhythm learned from the games' chord tracks
    rhythms = comping(ctx, part.busy)
    chosen = themed(ctx, rng, lambda r: weighted(r, rhythms, lambda x: x["songs"]))
    grid = ctx.bar / (ctx.steps() or 16)
    for a, b, theme in ctx.sections:
        for bar in range(a, b):
            for step, length in chosen[theme]["notes"]:
                t = bar * ctx.bar + step * grid
                start, end, v = voiced[bisect.bisect_right([x[0] for x in voiced], t + 1e-9) - 1]
                if part.style == "power":
                    root = part.low + (v[0] - part.low) % 12
                    v = (root, root + 7, root + 12)
                notes += [Note(t, min(length * grid, end - t), p, vel) for p in v]
    return notes


def comping(ctx, busy=16):
    """The learned chord rhythms of the song's metre with two to `busy` onsets a bar (a held chord is what
    'pad' plays), or a chord on every beat where the metre has none learned."""
    learned = [r for r in data()["comping"].get(ctx.metre, []) if 2 <= len(r["notes"]) <= busy]
    if learned:
        return learned
    steps = 4
    return [{"notes": [[s * steps, steps] for s in range(int(ctx.bar))], "songs": 1, "bars": 1}]


# --- bass --------------------------------------------------------------------------------------------------

def bass(ctx, part, rng):
    """The bass line: a learned bar pattern per theme (part.least to part.busy notes a bar), each note placed by its
    relation to the chord (root, third, fifth, seventh, approach, passing), the root in the register's lowest
    octave; the last note of a section (and of a loop) steps into the next chord's root."""
    steps = ctx.steps()
    learned = [p for p in data()["bass"].get(ctx.metre, []) if part.least <= len(p["notes"]) <= part.busy]
    if not steps or not learned:  # a metre with nothing learned: the root on every beat
        steps = int(ctx.bar) * 4
        learned = [{"notes": [[4 * b, 4, "R", 0] for b in range(int(ctx.bar))], "songs": 1, "bars": 1}]
    chosen = themed(ctx, rng, lambda r: weighted(r, learned, lambda x: x["songs"]))
    grid = ctx.bar / steps
    notes = []
    beat = steps // max(1, round(ctx.bar))  # steps a beat
    for a, b, theme in ctx.sections:
        for bar in range(a, b):
            pattern = [list(x) for x in chosen[theme]["notes"]]
            if bar == b - 1:  # the section's last beat steps into what follows (a loop's: into bar 1)
                head = pattern[-1]
                if head[0] < steps - beat:  # its last note sounds into the last beat: it makes room there
                    head[1] = min(head[1], steps - beat - head[0])
                    pattern.append([steps - beat, beat, "A", 0])
                else:
                    head[2] = "A"
            for step, length, label, octave in pattern:
                t = bar * ctx.bar + step * grid
                pitch = bass_pitch(ctx, part, t, label, octave)
                accent = 10 if step == 0 else 0
                notes.append(Note(t, length * grid, pitch, min(127, part.velocity + accent)))
    return notes


def bass_pitch(ctx, part, t, label, octave):
    _, _, chord = ctx.chord_at(t)
    root, quality = CHORDS[chord]
    base = part.low + (ctx.tonic + root - part.low) % 12
    if label == "A":  # a step into the next chord's root: a semitone below, or a whole step above
        _, _, nxt = ctx.next_chord(t)
        target = part.low + (ctx.tonic + CHORDS[nxt][0] - part.low) % 12
        pitch = target - 1 if target - 1 >= part.low else target + 2
        return pitch if pitch != base else base + 7
    offset = {"R": 0, "3": QUALITIES[quality][1], "5": QUALITIES[quality][2],
              "7": QUALITIES[quality][3] if quality == "7" else 12, "P": 2}.get(label, 0)
    pitch = base + offset + 12 * octave
    while pitch > part.high:
        pitch -= 12
    while pitch < part.low:
        pitch += 12
    return pitch


# --- drums -------------------------------------------------------------------------------------------------

def drums(ctx, part, kit, rng, one_drum=False):
    """Drums: a learned groove per theme, kept bar to bar; a learned fill in a section's last bar (half the
    time; always in a loop's last bar, leading back into bar 1); a crash on each section's first beat.
    Drum kinds the kit lacks are dropped; `one_drum` keeps one drum a step (a single noise channel)."""
    steps = ctx.steps()
    table = data()
    grooves = [g for g in table["grooves"].get(ctx.metre, []) if kit_fits(g, kit)] if steps else []
    # the grooves most songs share, and most bars play, come first (songs x the root of bars)
    fills = [g for g in table["fills"].get(ctx.metre, []) if kit_fits(g, kit)] if steps else []
    if not grooves:  # no groove learned for this metre (or this kit): kick on one, snare in the middle
        steps = int(ctx.bar) * 4
        hits = [["kick", 0, 100], ["snare", steps // 2, 90]] + [["hat", s, 70] for s in range(0, steps, 4)]
        grooves = [{"notes": hits, "songs": 1, "bars": 1}]
    grid = ctx.bar / steps
    # one groove for the whole song, as the human songs mostly keep theirs across phrases (their bars opening
    # a phrase differ little more from the bars before than bars inside one do: start_contrast, median
    # 0.06, vgmusic.arrangement); each theme varies it in its own way: its bars' last beat played as one of
    # the learned grooves nearest it plays it (inside a phrase the human songs' bars differ by about 0.2)
    groove = weighted(rng, grooves, lambda x: x["songs"] * x["bars"] ** 0.5)["notes"]
    neighbours = nearest(groove, [g["notes"] for g in grooves], kit)
    variation = themed(ctx, rng, lambda r: neighbours[int(r.integers(len(neighbours)))])
    scale = part.velocity / 90
    notes = []
    for a, b, theme in ctx.sections:
        other = variation[theme]
        for bar in range(a, b):
            last = bar == b - 1 and b - a > 1
            hits = groove
            if last and fills and (ctx.loop and bar == ctx.bars - 1 or rng.random() < FILL_CHANCE):
                # a fill: the groove, then a learned fill's last beat (its last half where that beat is empty):
                # the human songs' phrase-closing bars differ from the groove hardly more than bars inside a
                # phrase do (fill_contrast, median -0.01), so a fill is a short one
                fill = weighted(rng, fills, lambda x: x["songs"])["notes"]
                cut = 3 * steps // 4 if any(h[1] >= 3 * steps // 4 for h in fill) else steps // 2
                tail = [h for h in fill if h[1] >= cut]
                hits = [h for h in groove if h[1] < cut] + tail if tail else fill
            elif bar > a and rng.random() < VARY_CHANCE:
                hits = [h for h in groove if h[1] < 3 * steps // 4] + [h for h in other if h[1] >= 3 * steps // 4]
            if bar == a and "crash" in kit:  # a section opens with a crash, in place of the hat on one
                hits = [h for h in hits if not (h[0] in HAT_KINDS and h[1] == 0)] + [["crash", 0, 100]]
            elif hits is groove:
                hits = [h for h in hits if h[0] != "crash"]
            by_step = {}
            for kind, step, vel in hits:
                if kind in kit:
                    by_step.setdefault(step, []).append((kind, vel))
            for step, struck in sorted(by_step.items()):
                if one_drum:
                    struck = [min(struck, key=lambda kv: ONE_DRUM_ORDER.index(kv[0]))]
                for kind, vel in dict(struck).items():
                    notes.append(Note(bar * ctx.bar + step * grid, grid, kit[kind],
                                      max(1, min(127, round(vel * scale)))))
    return notes


def nearest(groove, grooves, kit, k=3):
    """The `k` learned grooves most like `groove` (Jaccard over the kit's (kind, step) hits), itself excluded."""
    def hits(g):
        return {(kind, s) for kind, s, _ in g if kind in kit}
    mine = hits(groove)
    scored = sorted(((len(mine & hits(g)) / max(1, len(mine | hits(g))), -i) for i, g in enumerate(grooves)
                     if hits(g) != mine), reverse=True)
    return [grooves[-i] for _, i in scored[:k]] or [groove]


def kit_fits(groove, kit):
    """A groove or fill the kit can play: a kick or snare it has, and most of its hits."""
    kinds = [h[0] for h in groove["notes"]]
    return any(k in kit for k in ("kick", "snare")) and sum(k in kit for k in kinds) >= 0.6 * len(kinds)
