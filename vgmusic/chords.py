"""The chord vocabulary the arranger harmonises with and learns from, in one place (the learner, the
harmoniser and the arranger all read it). Plain Python: composing imports it.

A chord is (root, quality) with the root in semitones above the key's tonic, so one table serves every key
and the statistics learned from songs in any key pool together. The vocabulary is every major and minor
triad on the twelve roots (game music borrows freely: bVII, bVI, bIII in major, IV and bII in minor), the
two diminished triads a key has (vii, and ii of minor) and the dominant seventh: 27 chords. Which of them a
key really uses, and how often, is learned (arrangement_data.json); chords the data hardly uses are left
out of the harmoniser's choices.
"""

# intervals above the root of each quality
QUALITIES = {"maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "7": (0, 4, 7, 10)}
ROMAN = ("I", "bII", "II", "bIII", "III", "IV", "#IV", "V", "bVI", "VI", "bVII", "VII")
CHORDS = ([(r, "maj") for r in range(12)] + [(r, "min") for r in range(12)] + [(11, "dim"), (2, "dim"), (7, "7")])
INDEX = {c: i for i, c in enumerate(CHORDS)}


def chord_name(chord):
    """Roman numeral relative to the tonic: (7, 'maj') -> 'V', (9, 'min') -> 'vi', (11, 'dim') -> 'vii°'."""
    root, quality = chord
    numeral = ROMAN[root]
    if quality in ("min", "dim"):
        numeral = numeral.lower()
    return numeral + {"maj": "", "min": "", "dim": "°", "7": "7"}[quality]


NAMES = [chord_name(c) for c in CHORDS]


def pitch_classes(chord, tonic=0):
    """The chord's pitch classes in a key whose tonic is `tonic`, root first."""
    root, quality = chord
    return [(tonic + root + i) % 12 for i in QUALITIES[quality]]


# the chords of each mode's own scale (minor: natural and harmonic): where the notes leave the quality open
# (a power chord, root and fifth, is everywhere in game music) the key's own chord is meant
DIATONIC = {"major": {(0, "maj"), (2, "min"), (4, "min"), (5, "maj"), (7, "maj"), (9, "min"), (11, "dim"), (7, "7")},
            "minor": {(0, "min"), (2, "dim"), (3, "maj"), (5, "min"), (7, "min"), (7, "maj"), (7, "7"), (8, "maj"),
                      (10, "maj"), (11, "dim")}}


def recognise(weights, bass=None, mode="major"):
    """The index of the chord best explaining 12 pitch-class weights (relative to the tonic), and how much
    of the weight it explains (0-1); `bass`, 12 weights of the lowest part, makes a root in the bass count
    more (a sounded root is what tells C-E-G from A-C-E). A seventh is chosen only where its seventh sounds;
    of chords explaining the notes as well, the mode's own wins."""
    total = sum(weights) or 1.0
    w = [x / total for x in weights]
    b = [x / (sum(bass) or 1.0) for x in bass] if bass else [0.0] * 12
    best, best_score, explained = 0, -1e9, 0.0
    for i, (root, quality) in enumerate(CHORDS):
        pcs = [(root + x) % 12 for x in QUALITIES[quality]]
        inside = sum(w[p] for p in pcs)
        score = inside - 0.6 * (1 - inside) + 0.3 * b[root % 12] + 0.1 * w[root % 12]
        score += 0.05 * ((root, quality) in DIATONIC[mode])
        if quality == "7":
            score -= 0.08 if w[pcs[3]] > 0.08 else 1.0
        if score > best_score:
            best, best_score, explained = i, score, inside
    return best, explained
