"""The one song type every stage reads and writes: a Song holds Tracks, a Track holds Notes.

    Song    tempo map, metre, key, length, form sections, loop points, tracks, meta
    Track   name, General MIDI program, channel, drum flag, role, notes
    Note    onset, duration (beats: quarter notes), pitch, velocity

Extraction reads a MIDI file into a Song (vgmusic.midi), the encodings turn Songs into tokens and tokens
into Songs, composing returns Songs, and the MIDI writer, the synthesizer, the piano roll, the metrics,
the records and the listening page all read them. Its JSON form (to_json / from_json) is lossless (times
are the floats the reader computed, and JSON keeps every float exactly), so the extraction cache and a
song's record are Songs too. Like muspy's Music, it is plain data: nothing here imports music21, Keras or
even NumPy, so composing and rendering stay light.

Times are beats, not seconds or ticks: notes keep their place in the bar whatever the tempo, and the tempo
map (`tempos`) turns beats into seconds where sound is made.
"""
import math
from dataclasses import dataclass, field
from typing import NamedTuple

# Bump when the JSON form changes; from_json refuses other versions, and the extraction cache rebuilds.
SONG_FORMAT = 1
DRUM_CHANNEL = 9  # MIDI channel 10 counted from 1: General MIDI's percussion
DEFAULT_BPM = 120.0  # what MIDI assumes before the first tempo message
DEFAULT_VELOCITY = 80  # composed notes: mezzo-forte, as music21 reads an unmarked note
# what a Song may hold (from_json checks them; the MIDI reader leaves out tempo and metre events beyond them)
BPM_RANGE = (1e-3, 1e6)
METRE_MAX = 255  # numerator and denominator: what a MIDI time signature can say


class Note(NamedTuple):
    """One sounding pitch. A tuple, so n[0] (onset) and n[2] (pitch) read as fast as a list and a
    note serialises to JSON as [onset, duration, pitch, velocity]."""
    onset: float
    duration: float
    pitch: int
    velocity: int = DEFAULT_VELOCITY


@dataclass
class Track:
    """One instrument's part: its own MIDI track and channel when written."""
    notes: list = field(default_factory=list)
    name: str = ""
    program: int = 0  # General MIDI program 0-127 (ignored on a drum track, which plays the kit)
    channel: int = None  # 0-15 as read; None lets the writer choose (drums always get channel 10)
    drum: bool = False
    role: str = ""  # what the part does in an arrangement: "melody", "bass", "harmony", "drums", ...

    def end(self):
        return max((n.onset + n.duration for n in self.notes), default=0.0)

    def playable(self):
        """The notes as one MIDI channel can play them: a note still sounding when its pitch is struck
        again ends there, and one pitch struck twice at once sounds once, as long as the longer (MIDI has
        no two of one pitch at once on a channel)."""
        out, last = [], {}
        for n in sorted(self.notes):
            j = last.get(n.pitch)
            if j is not None and out[j] is not None and out[j].onset + out[j].duration > n.onset:
                if out[j].onset == n.onset:
                    n, out[j] = n._replace(duration=max(n.duration, out[j].duration)), None
                else:
                    out[j] = out[j]._replace(duration=n.onset - out[j].onset)
            last[n.pitch] = len(out)
            out.append(n)
        return [n for n in out if n is not None]


@dataclass
class Section:
    """A phrase of the song's form: it starts at `start` beats and lasts until the next one."""
    start: float
    label: str  # "A", "A'" (A replayed with a new last bar), "B", "A2" (the form's second pass) ...


@dataclass
class Key:
    tonic: int  # pitch class 0-11, C = 0
    mode: str  # "major" or "minor"

    @property
    def name(self):
        from .theory import key_name
        return key_name(self.tonic, self.mode)


@dataclass
class Song:
    tracks: list = field(default_factory=list)
    tempos: list = field(default_factory=lambda: [(0.0, DEFAULT_BPM)])  # (beat, bpm), first at beat 0
    metre: tuple = (4, 4)  # the time signature: numerator, denominator
    key: Key = None  # None: unknown
    length: float = None  # beats, the end of the song (whole bars when composed); None: the last note's end
    sections: list = field(default_factory=list)  # Sections, in time order
    loop: tuple = None  # (start, end) beats: a game plays start..end over and over
    title: str = ""
    meta: dict = field(default_factory=dict)  # where it came from and how it was made (JSON values only)

    # --- time ------------------------------------------------------------------------------------------
    @property
    def bpm(self):
        return self.tempos[0][1]

    @property
    def beats_per_bar(self):
        return self.metre[0] * 4 / self.metre[1]

    @property
    def end(self):
        """The song's length in beats: `length`, else where its last note ends."""
        return self.length if self.length is not None else max((t.end() for t in self.tracks), default=0.0)

    @property
    def bars(self):
        return self.end / self.beats_per_bar

    def seconds(self, beat):
        """Seconds from the start to `beat`, through every tempo change before it."""
        out, (at, bpm) = 0.0, self.tempos[0]
        for start, next_bpm in self.tempos[1:]:
            if start >= beat:
                break
            out += (start - at) * 60 / bpm
            at, bpm = start, next_bpm
        return out + (beat - at) * 60 / bpm

    @property
    def duration(self):
        """Seconds the song lasts."""
        return self.seconds(self.end)

    # --- parts -----------------------------------------------------------------------------------------
    def pitched(self):
        return [t for t in self.tracks if not t.drum and t.notes]

    def melody(self):
        """The track that carries the tune: the highest-sounding of the pitched tracks that play a real
        share of the notes (a track marked role "melody" wins outright). Accompaniment tends to be lower
        and either sparse (pads) or dense (arpeggios); the first track, which the original project took,
        is often a bass, a drum or an empty track. None when nothing is pitched."""
        marked = [t for t in self.pitched() if t.role == "melody"]
        if marked:
            return marked[0]
        pitched = self.pitched()
        if not pitched:
            return None
        most = max(len(t.notes) for t in pitched)
        candidates = [t for t in pitched if len(t.notes) >= 0.25 * most]
        return max(candidates, key=lambda t: sum(n.pitch for n in t.notes) / len(t.notes))

    def notes(self, drums=False):
        """Every note of every pitched track (and of the drum tracks with `drums`), in time order."""
        return sorted(n for t in self.tracks if t.notes and (drums or not t.drum) for n in t.notes)

    def section_at(self, beat):
        """The label of the section playing at `beat` ("" before the first)."""
        label = ""
        for s in self.sections:
            if s.start > beat + 1e-9:
                break
            label = s.label
        return label

    # --- JSON ------------------------------------------------------------------------------------------
    def to_json(self):
        return {"format": SONG_FORMAT, "title": self.title, "tempos": [list(t) for t in self.tempos],
                "metre": list(self.metre), "key": None if self.key is None else [self.key.tonic, self.key.mode],
                "length": self.length, "sections": [[s.start, s.label] for s in self.sections],
                "loop": None if self.loop is None else list(self.loop), "meta": self.meta,
                "tracks": [{"name": t.name, "program": t.program, "channel": t.channel, "drum": t.drum,
                            "role": t.role, "notes": [list(n) for n in t.notes]} for t in self.tracks]}

    @classmethod
    def from_json(cls, obj):
        """The Song of to_json's form, every field checked: ValueError says what is wrong in a few words."""
        try:
            return _from_json(obj)
        except (KeyError, TypeError, IndexError, AttributeError) as e:
            raise ValueError(f"not a song ({type(e).__name__}: {e})") from None


def _number(v, low=-math.inf, high=math.inf):
    try:  # a finite float: JSON also reads Infinity, NaN and integers too large for a float
        f = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan
    except OverflowError:
        f = math.nan
    if not math.isfinite(f) or not low <= f <= high:
        raise ValueError(f"{v!r:.40} is not a number from {low:g} to {high:g}")
    return f


def _int(v, low, high):
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        raise ValueError(f"{v!r:.40} is not a whole number from {low} to {high}")
    return v


def _from_json(obj):
    if not isinstance(obj, dict):
        raise ValueError(f"a song is a JSON object, not {type(obj).__name__}")
    if obj.get("format") != SONG_FORMAT:
        raise ValueError(f"song format {obj.get('format')!r:.40} is not {SONG_FORMAT}")
    tracks = []
    for t in obj["tracks"]:
        notes = [Note(_number(n[0], 0), _number(n[1], 0), _int(n[2], 0, 127), _int(n[3], 0, 127))
                 for n in t["notes"]]
        if any(len(n) != 4 for n in t["notes"]):
            raise ValueError("a note is [onset, duration, pitch, velocity]")
        tracks.append(Track(notes, str(t["name"]), _int(t["program"], 0, 127),
                            None if t["channel"] is None else _int(t["channel"], 0, 15), bool(t["drum"]),
                            str(t["role"])))
    tempos = [(_number(b, 0), _number(bpm, *BPM_RANGE)) for b, bpm in obj["tempos"]]
    if not tempos or tempos[0][0] != 0:
        raise ValueError("the tempo map must start at beat 0")
    num, den = (_int(x, 1, METRE_MAX) for x in obj["metre"])
    if den & (den - 1):
        raise ValueError(f"metre {num}/{den}: the denominator is not a power of 2")
    key = obj["key"]
    if key is not None:
        if key[1] not in ("major", "minor"):
            raise ValueError(f"mode {key[1]!r:.40} is not major or minor")
        key = Key(_int(key[0], 0, 11), key[1])
    loop = obj["loop"]
    if loop is not None:
        loop = (_number(loop[0], 0), _number(loop[1], 0))
        if loop[1] <= loop[0]:
            raise ValueError(f"loop {list(loop)} ends before it starts")
    if not isinstance(obj["meta"], dict):
        raise ValueError("meta must be an object")
    return Song(tracks=tracks, tempos=tempos, metre=(num, den), key=key,
                length=None if obj["length"] is None else _number(obj["length"], 0),
                sections=[Section(_number(s, 0), str(label)) for s, label in obj["sections"]], loop=loop,
                title=str(obj["title"]), meta=obj["meta"])
