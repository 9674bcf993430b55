"""Music theory the project needs, in one place: keys and their names, scales and moves inside them, key
estimation, General MIDI instrument names. Plain Python and NumPy: composing imports it."""
import re

PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
# key names: the spelling key signatures use (Eb major, not D# major)
KEY_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# note names on a piano roll's axis: scientific pitch names, sharps
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
C_MAJOR = (0, 2, 4, 5, 7, 9, 11)
# Krumhansl and Kessler's key profiles: how well each scale degree fits a major or a minor key.
KEY_PROFILES = {"major": [6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88],
                "minor": [6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17]}


def note_name(pitch):
    """MIDI pitch -> scientific pitch name: 60 is C4 (middle C), 69 is A4."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def key_name(tonic, mode):
    return f"{KEY_NAMES[tonic % 12]} {mode}"


def parse_key(text):
    """'D minor', 'Bb', 'f# min', 'Ebm' -> (tonic pitch class, 'major' or 'minor')."""
    m = re.fullmatch(r"\s*([A-Ga-g])\s*(#|b|♯|♭|sharp|flat)?\s*(major|maj|minor|min|m)?\s*", text, re.IGNORECASE)
    if not m or (m[2] and m[2][0] == "B"):  # 'B' alone is a note name, not a flat sign
        raise ValueError(f"{text!r} is not a key (e.g. 'D minor', 'Bb major', 'F#')")
    shift = {"#": 1, "♯": 1, "s": 1, "b": -1, "♭": -1, "f": -1}[m[2][0].lower()] if m[2] else 0
    return (PITCH_CLASSES[m[1].upper()] + shift) % 12, "minor" if m[3] and m[3].lower() != "major" and \
        m[3].lower() != "maj" else "major"


def gm_program(text):
    """General MIDI program of an instrument, by number or by (part of) its name: 'flute' -> 73."""
    text = str(text)
    if re.fullmatch(r"\s*[-+]?[\d.]+\s*", text):  # a number: a whole one from 0 to 127, nothing else
        if not text.strip().isdigit() or int(text) > 127:
            raise ValueError(f"General MIDI programs are whole numbers from 0 to 127, got {text.strip()!r}")
        return int(text)
    from pretty_midi.constants import INSTRUMENT_MAP

    def words(name):
        return re.findall(r"[a-z0-9]+", name.lower())
    want = words(text)
    exact = [i for i, name in enumerate(INSTRUMENT_MAP) if words(name) == want]
    # else every word given, in any order: 'square lead' is 'Lead 1 (square)'
    found = exact or [i for i, name in enumerate(INSTRUMENT_MAP) if want and set(want) <= set(words(name))]
    if not found:
        raise ValueError(f"{text!r} is no General MIDI instrument (e.g. 'piano', 'flute', 'square lead', 0-127)")
    return found[0]  # the first General MIDI instrument of that name: 'guitar' is a nylon guitar


def diatonic_shift(pitch, steps):
    """Move a pitch by scale steps within C major: a melody keeps its contour and its key, and each of its
    intervals changes by at most a semitone (a step stays a step). A note outside the scale moves with
    the scale note below it."""
    if not steps:
        return pitch
    octave, pc = divmod(pitch, 12)
    chroma = 0 if pc in C_MAJOR else 1
    degree = C_MAJOR.index(pc - chroma) + steps
    return 12 * (octave + degree // 7) + C_MAJOR[degree % 7] + chroma


def key_shift(key):
    """Semitones (-6..5) that take a key (song.Key) to C major or A minor."""
    target = 0 if key.mode == "major" else 9
    shift = (target - key.tonic) % 12
    return shift - 12 if shift > 5 else shift


def estimate_key(notes):
    """(tonic pitch class, mode) by the Krumhansl-Schmuckler method, each note weighted by its length."""
    import numpy as np
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
    return shift, key_name(target, mode)


# the parts of an arrangement, each its own track (vgmusic/arrange.py)
ROLES = ("melody", "harmony", "bass", "drums")


def instrument_choice(text):
    """(track, General MIDI program) of an --instrument value: TRACK=NAME, or a NAME alone for the melody."""
    track, sep, name = text.partition("=")
    if not sep:
        track, name = "melody", text
    track = track.strip().lower()
    if track not in ROLES[:3]:  # the drums play General MIDI's kit on channel 10, not a program
        raise ValueError(f"{track!r} is not a track with an instrument: one of {', '.join(ROLES[:3])}")
    return track, gm_program(name)


def parse_bars(text):
    """(first, last) bars, counted from 1, of '5-8' or '9'."""
    first, sep, last = text.partition("-")
    try:
        first, last = int(first), int(last) if sep else int(first)
    except ValueError:
        raise ValueError(f"{text!r} is not FIRST-LAST bars") from None
    if not 1 <= first <= last <= 100000:
        raise ValueError(f"bars {text!r}: counted from 1, the first at most the last")
    return first, last
