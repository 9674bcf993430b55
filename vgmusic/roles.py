"""Which tracks of a song play its melody, harmony, bass and drums.

    roles(song)    "melody", "harmony", "bass", "drums" -> the Tracks playing each: a composed song's own
                   Track.role, or a file's role names; heuristics on a human file

vgmusic/arrangement.py judges an arrangement part by part from these. Plain NumPy.
"""
import numpy as np

from .theory import ROLES

STEP = 0.25  # beats between sampling points: a sixteenth, the drums' grid and the pitched rolls'
DOUBLING = 0.6  # a track whose (sixteenth, pitch class) onsets are this much another's doubles it
BASS_MAX = 55  # MIDI G3: a bass line's median pitch lies below (the human songs' bass tracks: 23-52)
BASS_PRESENCE = 0.3  # ... and it plays in at least this share of the bars that sound


def _onset_keys(track):
    return {(round(n.onset / STEP), n.pitch % 12) for n in track.notes}


def doubles(a, b):
    """The share of track a's (sixteenth, pitch class) onsets that track b also plays."""
    ka = _onset_keys(a)
    return len(ka & _onset_keys(b)) / len(ka) if ka else 0.0


def _bars_played(notes, bar):
    return {int(n.onset // bar) for n in notes}


def roles(song):
    """ROLES -> lists of Tracks (each track in one role).

    A song whose tracks carry roles (composed ones), or a file whose every track is named by a role (as
    this project writes them), is taken at its word: a drum track without one plays drums, a pitched
    one harmony. A human file: drums are the drum-channel tracks; the melody is
    Song.melody() and every track doubling it (DOUBLING); the bass is the remaining pitched track of
    lowest median pitch when that lies below BASS_MAX and it plays in BASS_PRESENCE of the sounding bars,
    with the tracks doubling it; every other pitched track with notes is harmony."""
    out = {r: [] for r in ROLES}
    tracks = [t for t in song.tracks if t.notes]
    # a file this project wrote names each track by its role (midi.py: the name, else the role); a
    # human file may name a track "bass" too, so names count only when every track's is a role's
    named = {id(t): t.name.strip().lower() for t in tracks}
    if not all(v in ROLES for v in named.values()) or "melody" not in named.values():
        named = {}
    if any(t.role in ROLES for t in tracks) or named:
        for t in tracks:
            role = t.role if t.role in ROLES else named.get(id(t), "")
            out[role if role in ROLES else "drums" if t.drum else "harmony"].append(t)
        if not out["melody"] and out["harmony"]:
            m = max(out["harmony"], key=lambda t: np.mean([n.pitch for n in t.notes]))
            out["harmony"].remove(m)
            out["melody"].append(m)
        return out
    out["drums"] = [t for t in tracks if t.drum]
    melody = song.melody()
    if melody is None:
        return out
    rest = [t for t in tracks if not t.drum and t is not melody]
    out["melody"] = [melody] + [t for t in rest if doubles(t, melody) >= DOUBLING]
    rest = [t for t in rest if t not in out["melody"]]
    if rest:
        bar = song.beats_per_bar
        sounding = _bars_played(song.notes(), bar)
        low = min(rest, key=lambda t: np.median([n.pitch for n in t.notes]))
        if (np.median([n.pitch for n in low.notes]) < BASS_MAX
                and len(_bars_played(low.notes, bar)) >= BASS_PRESENCE * len(sounding)):
            out["bass"] = [low] + [t for t in rest if t is not low and doubles(t, low) >= DOUBLING]
    out["harmony"] = [t for t in rest if t not in out["bass"]]
    return out
