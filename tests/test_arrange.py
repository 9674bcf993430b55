"""The arranger: real composed melodies (a shipped model, composing in NumPy) arranged for every ensemble,
written as MIDI and read back with mido; parts regenerated; the learned data rebuilt the same way."""
import json

import mido
import numpy as np
import pytest
from types import SimpleNamespace
from conftest import ROOT

from vgmusic.arrange import arrange, regenerate
from vgmusic.compose import Request, compose, load_model
from vgmusic.ensembles import ENSEMBLES, get_ensemble, with_instruments
from vgmusic.predict import instruments_of
from vgmusic.harmony import data
from vgmusic.midi import write_midi
from vgmusic.song import DRUM_CHANNEL, Section, Song

RES = 48  # cells a beat, to count the voices sounding at once


@pytest.fixture(scope="module")
def songs():
    """Two 8-bar loops and one 8-bar song of the shipped Pokemon model (its form's sections, 4/4)."""
    model = load_model(ROOT / "pokemon_red_blue_yellow" / "weights")
    return (compose(model, Request(num=2, bars=8, seed=3, loop=True))
            + compose(model, Request(num=1, bars=8, seed=4)))


def by_role(song):
    return {t.role: t for t in song.tracks}


def sounding(notes, end):
    count = np.zeros(int(end * RES) + 2, int)
    for n in notes:
        a = round(n.onset * RES)
        count[a:max(a + 1, round((n.onset + n.duration) * RES))] += 1
    return count


@pytest.mark.parametrize("name", list(ENSEMBLES))
def test_every_ensemble_arranges_in_its_tracks_channels_programs_and_registers(songs, name, tmp_path):
    song = songs[0]
    ens = get_ensemble(name)
    before = [list(t.notes) for t in song.tracks]
    out = arrange(song, name, seed=1)
    assert [list(t.notes) for t in song.tracks] == before, "the song given was changed"
    roles = [t.role for t in out.tracks]
    assert roles == [r for r in ("melody", "harmony", "bass", "drums") if r in ens.default_tracks]
    tracks = by_role(out)
    assert all(t.notes for t in out.tracks)
    assert len({t.channel for t in out.tracks}) == len(out.tracks)
    for role, t in tracks.items():
        if role == "drums":
            assert t.drum and t.channel == DRUM_CHANNEL
            assert {n.pitch for n in t.notes} <= set(ens.kit.values())
        else:
            assert t.program == ens.parts[role].program and not t.drum
        if role in ("harmony", "bass"):
            assert all(ens.parts[role].low <= n.pitch <= ens.parts[role].high for n in t.notes), role
    # the melody: every note as composed, moved as a whole by the octaves the record names
    k = out.meta["arrangement"]["melody_octaves"]
    assert tracks["melody"].notes == [n._replace(pitch=n.pitch + 12 * k) for n in song.tracks[0].notes]
    assert (out.metre, out.length, out.loop, out.tempos) == (song.metre, song.length, song.loop, song.tempos)
    assert [(s.start, s.label) for s in out.sections] == [(s.start, s.label) for s in song.sections]
    # nothing sounds past a loop's end
    assert max(n.onset + n.duration for t in out.tracks for n in t.notes) <= song.end + 1e-9
    record = out.meta["arrangement"]
    assert record["ensemble"] == name and record["tracks"] == roles and len(record["chords"]) == 8
    # written and read back with mido: a track per part, its channel and program
    path = write_midi(out, tmp_path / "a.mid")
    midi = mido.MidiFile(path)
    programs = {}
    for track in midi.tracks[1:]:
        for msg in track:
            if msg.type == "program_change":
                programs[msg.channel] = msg.program
    assert len(midi.tracks) == 1 + len(out.tracks)
    assert programs == {t.channel: (0 if t.drum else t.program) for t in out.tracks}
    json.dumps(out.to_json())  # the record is JSON


def test_chip_never_sounds_more_than_four_voices_nor_two_drums(songs):
    for song in songs:
        out = arrange(song, "chip", seed=2)
        everything = [n for t in out.tracks for n in t.notes]
        assert sounding(everything, out.end).max() <= 4
        tracks = by_role(out)
        pulses = tracks["melody"].notes + tracks["harmony"].notes
        # two pulse channels: the harmony never adds a third voice (the melody, never touched, may hold chords)
        alone = sounding(tracks["melody"].notes, out.end)
        assert (sounding(pulses, out.end) <= np.maximum(2, alone)).all()
        assert sounding(tracks["bass"].notes, out.end).max() <= 1
        onsets = [n.onset for n in tracks["drums"].notes]
        assert len(onsets) == len(set(onsets))  # one drum at a time


def seam_score(song):
    """The learned log-probability of the song's last chord moving into its first (harmony.tables)."""
    from vgmusic.chords import NAMES
    from vgmusic.harmony import tables, transition_row
    states, log_change, stay, *_ = tables(song.key.mode)
    spans = song.meta["arrangement"]["spans"]
    last, first = (states.index(NAMES.index(spans[i][2])) for i in (-1, 0))
    return transition_row(last, log_change, stay, True)[first]


def test_a_loop_leads_back_into_its_first_bar(songs):
    for song in songs[:2]:
        out = arrange(song, "16bit", seed=3)
        # the last chord chosen knowing it leads into the first: at least as likely a move as without the loop
        unlooped = Song(tracks=song.tracks, tempos=song.tempos, length=song.length, sections=song.sections,
                        key=out.key)
        assert seam_score(out) >= seam_score(arrange(unlooped, "16bit", seed=3)) - 1e-9
        drums = [n for n in by_role(out)["drums"].notes if n.onset >= out.end - out.beats_per_bar]
        groove = [n for n in by_role(out)["drums"].notes if out.end - 2 * out.beats_per_bar <= n.onset
                  < out.end - out.beats_per_bar]
        assert {(n.onset % 4, n.pitch) for n in drums} != {(n.onset % 4, n.pitch) for n in groove}  # a fill
        # the bass's last note steps into the first chord's root (a semitone below or a whole step above)
        root = by_role(out)["bass"].notes[0].pitch % 12
        assert (by_role(out)["bass"].notes[-1].pitch - root) % 12 in (11, 2, 7)


def test_repeated_sections_get_the_same_chords(songs):
    song = songs[2]
    out = arrange(song, "band", seed=1)
    spans = out.meta["arrangement"]["spans"]
    melody = song.tracks[0].notes
    a, replay = [s for s in song.sections if s.label in ("A", "A'")][:2]

    def bar_notes(start):
        return [(round(n.onset - start, 4), n.duration, n.pitch) for n in melody if start <= n.onset < start + 4]

    def chords(start):
        return [name for x, y, name in spans if x < start + 4 and y > start]
    assert replay.start - a.start == 16
    for bar in range(3):  # A' replays A's first three bars note for note: the same chords
        assert bar_notes(a.start + 4 * bar) == bar_notes(replay.start + 4 * bar)
        assert chords(a.start + 4 * bar) == chords(replay.start + 4 * bar)


def test_tracks_and_instruments_choose_the_parts(songs):
    song = songs[2]
    only = arrange(song, "chip", tracks=("melody",))
    assert [t.role for t in only.tracks] == ["melody"] and only.tracks[0].notes == song.tracks[0].notes
    out = arrange(song, "chip", tracks=("melody", "bass", "drums"), instruments={"bass": "fretless bass"})
    assert [t.role for t in out.tracks] == ["melody", "bass", "drums"]
    assert by_role(out)["bass"].program == 35
    assert with_instruments("orchestra", {"melody": 73}).parts["melody"].program == 73
    assert instruments_of(SimpleNamespace(instrument=["bass=fretless bass", "flute"])) == {"bass": "fretless bass",
                                                                                          "melody": "flute"}
    for bad in (lambda: arrange(song, "kazoo band"), lambda: arrange(song, "chip", tracks=("melody", "tuba")),
                lambda: with_instruments("chip", {"bass": "kazoo"}), lambda: instruments_of(SimpleNamespace(instrument=["drums=flute"]))):
        with pytest.raises(ValueError):
            bad()


def test_regenerate_changes_one_part_and_keeps_everything_else(songs):
    out = arrange(songs[0], "chip", seed=1)
    new = regenerate(out, "bass", seed=9)
    for a, b in zip(out.tracks, new.tracks):
        if a.role == "bass":
            assert a.notes != b.notes and (a.channel, a.program) == (b.channel, b.program)
        else:
            assert a.notes == b.notes
    assert new.meta["arrangement"]["edits"] == [{"track": "bass", "seed": 9, "bars": None}]
    assert out.meta["arrangement"]["edits"] == []  # the song given is untouched
    # chosen bars only: bars 3-4 of the drums change, the rest of the drums note for note
    part = regenerate(out, "drums", seed=5, bars=(3, 4))
    old, fresh = by_role(out)["drums"].notes, by_role(part)["drums"].notes
    outside = lambda notes: [n for n in notes if not 8 <= n.onset < 16]  # noqa: E731
    assert outside(old) == outside(fresh)
    assert [n for n in old if 8 <= n.onset < 16] != [n for n in fresh if 8 <= n.onset < 16]
    with pytest.raises(ValueError):
        regenerate(out, "melody", seed=1)
    with pytest.raises(ValueError):
        regenerate(out, "bass", seed=1, bars=(7, 12))
    with pytest.raises(ValueError):
        regenerate(songs[0], "bass", seed=1)  # not an arrangement


def test_the_same_seed_repeats_and_another_changes(songs):
    a, b, c = (arrange(songs[1], "16bit", seed=s) for s in (4, 4, 5))
    assert a.to_json() == b.to_json()
    assert any(x.notes != y.notes for x, y in zip(a.tracks, c.tracks))


def test_a_melody_without_sections_or_in_three_is_arranged(songs):
    melody = songs[2].tracks[0]
    plain = Song(tracks=[melody], tempos=[(0.0, 100.0)], length=songs[2].length)
    out = arrange(plain, "orchestra", seed=1)
    assert len(out.tracks) == 4 and out.key is not None
    waltz = Song(tracks=[melody], metre=(3, 4), length=24.0, sections=[Section(0.0, "A"), Section(12.0, "B")])
    out = arrange(waltz, "piano", seed=1)
    assert all(n.onset + n.duration <= 24.0 + 1e-9 for t in out.tracks[1:] for n in t.notes)
    assert len(out.meta["arrangement"]["chords"]) == 8


def test_a_melody_moved_by_octaves_stays_inside_midi(tmp_path):
    """A melody far below the ensemble's register, with one note near the top of MIDI (an untrained model's
    melodies span octaves): moved up to the register, that note would pass 127 and the song not be written
    (CI met it once, from a random seed); it goes back by octaves instead, the rest as moved."""
    from vgmusic.song import Note, Track
    low = [Note(b * 0.5, 0.5, 20 + b % 5, 100) for b in range(60)]
    song = Song(tracks=[Track(low + [Note(31.0, 0.5, 125, 100)], role="melody")], tempos=[(0.0, 120.0)], length=32.0)
    for name in ENSEMBLES:
        out = arrange(song, name, seed=1)
        octaves = out.meta["arrangement"]["melody_octaves"]
        assert octaves > 0  # the test's power: the melody was moved up
        melody = out.tracks[0].notes
        assert [n.pitch for n in melody[:60]] == [n.pitch + 12 * octaves for n in low]
        assert melody[60].pitch % 12 == 125 % 12 and 127 - 12 < melody[60].pitch <= 127
        write_midi(out, tmp_path / f"{name}.mid")
        assert mido.MidiFile(tmp_path / f"{name}.mid").tracks  # written, and read back


def test_the_learned_data_records_its_sources_and_stays_small():
    d = data()
    assert set(d["sources"]) == {"freedoom", "openttd", "planetblupi", "chorales"}
    assert (ROOT / "vgmusic" / "arrangement_data.json").stat().st_size < 200_000
    assert d["bass"]["4/4"] and d["grooves"]["4/4"] and d["fills"]["4/4"] and d["comping"]["4/4"]
    for mode in ("major", "minor"):
        assert abs(sum(d["modes"][mode]["usage"]) - 1) < 1e-3
