"""The ensembles an arrangement is played by: for each role (melody, harmony, bass, drums) a General MIDI
program, a register, how many notes it may sound at once and how it plays; and how many voices the whole
ensemble may sound at once (the NES had four). Plain data: composing imports it.

    with_instruments(ENSEMBLES["chip"], {"bass": "fretless bass"})   # --instrument bass="fretless bass"
"""
from dataclasses import dataclass, field, replace

from .theory import ROLES  # the parts, named once
# the drum kinds the learned grooves use (vgmusic.arrange_learn.DRUM_KINDS) -> a General MIDI kit key
FULL_KIT = {"kick": 36, "snare": 38, "clap": 39, "hat": 42, "open": 46, "crash": 49, "ride": 51,
            "tom_low": 45, "tom_mid": 47, "tom_high": 50, "tambourine": 54, "cowbell": 56, "shaker": 70}


@dataclass(frozen=True)
class Part:
    program: int  # General MIDI program 0-127 (a drum part plays the kit on channel 10)
    low: int  # register: every note lies in low..high (MIDI pitches); drums ignore it
    high: int
    voices: int  # notes this part may sound at once
    style: str = ""  # harmony: "pad" (held chords), "block" (struck in a learned comping rhythm),
    #                  "arpeggio" (one voice running through the chord), "broken" (a left hand: the root on
    #                  the beat, then the chord), "power" (root, fifth and octave, as a rock guitar plays)
    velocity: int = 80  # the part's loudness; accompaniment sits under the melody
    name: str = ""  # the track's name
    busy: int = 16  # bass and struck chords: the learned bar patterns used have at most this many notes ...
    least: int = 1  # ... and at least this many

@dataclass(frozen=True)
class Ensemble:
    name: str
    parts: dict  # role -> Part
    kit: dict = field(default_factory=lambda: dict(FULL_KIT))  # drum kind -> key; kinds not here are dropped
    max_voices: int = 0  # notes sounding at once in all parts together (0: no limit)
    one_drum: bool = False  # at most one drum at a time (a single noise channel)
    groups: tuple = ()  # ((roles, voices), ...): roles sharing channels (the chip's pulses), at most voices at once
    default_tracks: tuple = ROLES  # the parts arranged when none are asked for
    description: str = ""


# chip: the NES's 2A03: two pulse channels, a triangle and a noise channel, four voices in all. The
# triangle bass is program 80 (Lead 1, square) played low: in TimGM6mb it sounds nearer a triangle wave than
# any bass or flute patch (rendered at E2 and A1, its harmonics are odd only, the 3rd 17-24 dB under the
# fundamental where a triangle's is 19 dB: 2-4 dB mean distance over 8 harmonics, against 10 for 79 Ocarina,
# 18 for 38 Synth Bass 1 and 36 for 33 Finger Bass). Noise drums: kick, snare and hat, one at a time. The two
# pulses are shared: the harmony's arpeggio rings into its next note (two voices) only where the melody
# rests, as NES tunes hand the first pulse to the accompaniment between phrases.
CHIP = Ensemble("chip", {
    "melody": Part(80, 48, 96, 1, velocity=92, name="pulse 1"),
    "harmony": Part(80, 48, 84, 2, "arpeggio", velocity=64, name="pulse 2"),
    "bass": Part(80, 28, 60, 1, velocity=96, name="triangle"),
    "drums": Part(0, 0, 127, 1, velocity=80, name="noise"),
}, kit={"kick": 36, "snare": 38, "clap": 38, "hat": 42, "open": 42, "ride": 42, "crash": 38},
    max_voices=4, one_drum=True, groups=((("melody", "harmony"), 2),),
    description="NES: two pulse voices, a triangle bass, noise drums, four voices")
# 16bit: SNES/Genesis: an FM brass lead, a warm synth pad striking chords in the games' learned comping
# rhythms (at most 8 a bar), a slap bass and a full kit. The pad, not synth strings: TimGM6mb's strings
# ring long after each chord, and the synthesizer pays for every ringing voice: a 16-bar song rendered in
# 0.42 s of CPU with the pad, 1.28 s with strings striking as often (and 0.55 s at 4 chords a bar)
SIXTEEN_BIT = Ensemble("16bit", {
    "melody": Part(62, 48, 96, 2, velocity=96, name="synth brass"),
    "harmony": Part(89, 48, 79, 4, "block", velocity=60, name="warm pad", busy=8),
    "bass": Part(36, 28, 55, 1, velocity=96, name="slap bass"),
    "drums": Part(0, 0, 127, 4, velocity=90, name="drum kit"),
}, description="SNES/Genesis: FM brass lead, warm synth pad, slap bass, full kit")
# orchestra: a horn melody over a string section (chords struck in the learned comping rhythms of at most
# eight a bar), pizzicato basses, orchestral percussion (bass drum, snare, cymbals, timpani-like low tom,
# the triangle where a kit has hi-hats or a cowbell, the tambourine for shakers)
ORCHESTRA = Ensemble("orchestra", {
    "melody": Part(60, 41, 89, 2, velocity=96, name="french horn"),
    "harmony": Part(48, 43, 79, 4, "block", velocity=64, name="strings", busy=8),
    "bass": Part(45, 28, 55, 1, velocity=100, name="pizzicato basses", busy=8),
    "drums": Part(0, 0, 127, 2, velocity=70, name="percussion"),
}, kit={"kick": 35, "snare": 38, "crash": 49, "tom_low": 41, "tom_mid": 41, "tom_high": 41, "hat": 80, "open": 81,
        "ride": 81, "tambourine": 54, "shaker": 54, "cowbell": 81},
    description="horn melody, string pad, pizzicato basses, orchestral percussion")
# piano: two hands, one piano, no drums unless asked. The right hand is the melody; the left hand plays
# the chord broken in eighths over a bass of two to four notes a bar, written as two tracks of the one
# piano (its bass and its broken chords) so that each can be edited alone.
PIANO = Ensemble("piano", {
    "melody": Part(0, 48, 108, 4, velocity=84, name="right hand"),
    "harmony": Part(0, 43, 72, 3, "broken", velocity=60, name="left hand chords"),
    "bass": Part(0, 28, 50, 1, velocity=72, name="left hand bass", busy=6, least=2),
    "drums": Part(0, 0, 127, 3, velocity=70, name="drum kit"),
}, default_tracks=("melody", "harmony", "bass"), description="two hands: melody; a left hand of bass and chords")
# band: the instrumentation of the very corpus the bass lines and grooves are learned from (Freedoom's songs
# are overdriven and distorted guitars, picked and finger basses and a rock kit: programs 29, 30, 33, 34), so
# a game's action music gets the patterns in the sound they were played in
BAND = Ensemble("band", {
    "melody": Part(29, 40, 91, 2, velocity=96, name="overdriven guitar"),
    "harmony": Part(30, 40, 67, 3, "power", velocity=72, name="distortion guitar"),
    "bass": Part(34, 28, 52, 1, velocity=100, name="picked bass"),
    "drums": Part(0, 0, 127, 4, velocity=100, name="rock kit"),
}, description="rock band: overdriven lead, power chords, picked bass, rock kit (Freedoom's sound)")
ENSEMBLES = {e.name: e for e in (CHIP, SIXTEEN_BIT, ORCHESTRA, PIANO, BAND)}
# a song of a game without its own (config.GAME_ENSEMBLES: a user's folder, a library call): the fullest of
# the synthesised sounds, which every figure of the judge finds inside the human songs' range
DEFAULT_ENSEMBLE = "16bit"


def get_ensemble(name):
    """An ensemble by name (or an Ensemble as it is); ValueError naming the known ones."""
    if isinstance(name, Ensemble):
        return name
    if name not in ENSEMBLES:
        raise ValueError(f"ensemble {name!r} is unknown; choose {', '.join(ENSEMBLES)}")
    return ENSEMBLES[name]


def with_instruments(ensemble, instruments):
    """The ensemble with some roles' programs replaced: {"bass": "fretless bass", "melody": 73}; names are
    General MIDI names or parts of them (theory.gm_program). The register stays the role's."""
    from .theory import gm_program
    ensemble = get_ensemble(ensemble)
    parts = dict(ensemble.parts)
    for role, instrument in (instruments or {}).items():
        if role not in parts:
            raise ValueError(f"--instrument {role}=...: no such track; tracks are {', '.join(ROLES)}")
        if role == "drums":
            raise ValueError("--instrument drums=...: the drums play the General MIDI kit; choose an ensemble")
        parts[role] = replace(parts[role], program=gm_program(instrument), name=str(instrument))
    return replace(ensemble, parts=parts)
