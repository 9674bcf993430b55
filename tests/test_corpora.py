"""Corpora for the base corpus: Freedoom's WADs read lump by lump, parallel export equal to serial export."""
import struct
from pathlib import Path

import mido
import pytest

from vgmusic import corpora, fetch
from vgmusic.midi import midi_to_song, parse_bytes

WADS = [Path(corpora.DEBIAN["freedoom"][1]) / f"freedoom{n}.wad" for n in (1, 2)]


def freedoom():
    if not all(w.is_file() for w in WADS):
        pytest.skip("apt-get install freedoom to test its WADs")
    return WADS


def test_the_real_freedoom_wads_hold_standard_midi_music():
    counts = {}
    for wad in freedoom():
        head = wad.read_bytes()[:12]
        assert head[:4] == b"IWAD"
        lumps = corpora.wad_lumps(wad)
        assert len(lumps) == struct.unpack("<i", head[4:8])[0] > 3000  # maps, sprites, sounds, music
        music = corpora.wad_music(wad)
        counts[wad.stem] = len(music)
        assert {kind for _, kind, _ in music} == {"midi"}  # Freedoom's lumps are MIDI files, not DMX MUS
        for name, _, data in music:
            assert name.startswith("D_") and data[:4] == b"MThd"
            song = midi_to_song(parse_bytes(data))
            assert sum(len(t.notes) for t in song.pitched()) > 20, name  # D_INTROA, a jingle: 34
    assert counts == {"freedoom1": 32, "freedoom2": 35}
    assert "D_E1M1" in {n for n, _, _ in corpora.wad_music(WADS[0])}
    assert "D_RUNNIN" in {n for n, _, _ in corpora.wad_music(WADS[1])}


def test_freedoom_corpus_exports_every_lump(tmp_path):
    freedoom()
    pieces = corpora.corpus_pieces("freedoom")
    assert len(pieces) == 67 and pieces[0][0] == "freedoom1_D_E1M1"
    report = fetch.Report()
    assert corpora.export_pieces(tmp_path / "freedoom", pieces, 0, report, False, workers=2, preload=()) == 67
    lumps = {f"{w.stem}_{n}": data for w in WADS for n, _, data in corpora.wad_music(w)}
    files = sorted(p.name for p in (tmp_path / "freedoom").iterdir())
    assert files == sorted(f"{n}.mid" for n in lumps)
    assert all((tmp_path / "freedoom" / f"{n}.mid").read_bytes() == data for n, data in lumps.items())
    assert "BSD" in corpora.LICENCES["freedoom"] and "freedoom" in corpora.CORPORA


def _wad(path, lumps, magic=b"PWAD"):
    """A WAD of (name, bytes) lumps: header, the lumps' bytes, then the directory."""
    body, table, at = b"", b"", 12
    for name, data in lumps:
        table += struct.pack("<ii8s", at, len(data), name.encode())
        body += data
        at += len(data)
    path.write_bytes(magic + struct.pack("<ii", len(lumps), at) + body + table)
    return path


def _midi_bytes(tmp_path):
    midi = mido.MidiFile()
    midi.tracks.append(mido.MidiTrack([mido.Message("note_on", note=60, velocity=90, time=0),
                                       mido.Message("note_off", note=60, time=480)]))
    midi.save(tmp_path / "one.mid")
    return (tmp_path / "one.mid").read_bytes()


def test_wad_directory_music_lumps_and_damage(tmp_path, capsys):
    midi = _midi_bytes(tmp_path)
    mus = b"MUS\x1a" + bytes(12)
    wad = _wad(tmp_path / "x.wad", [("MAP01", b"\1\2\3"), ("D_SONG", midi), ("D_OLD", mus), ("DEMO1", b"x"),
                                    ("D_EMPTY", b"")])
    assert corpora.wad_lumps(wad) == [("MAP01", 12, 3), ("D_SONG", 15, len(midi)), ("D_OLD", 15 + len(midi), 16),
                                      ("DEMO1", 31 + len(midi), 1), ("D_EMPTY", 32 + len(midi), 0)]
    assert [(n, k) for n, k, _ in corpora.wad_music(wad)] == [("D_SONG", "midi"), ("D_OLD", "mus")]
    # a MUS lump is skipped with one line naming it; the MIDI lump is written as it is
    pieces = [(f"x_{n}", lambda tmp, n=n: corpora._write_lump(tmp, wad, n)) for n in ("D_OLD", "D_SONG")]
    assert corpora.export_pieces(tmp_path / "out", pieces, 0, fetch.Report(), False, preload=()) == 1
    err = capsys.readouterr().err
    assert err == ("warning: skipping out piece x_D_OLD: lump D_OLD of x.wad is DMX MUS, not standard MIDI "
                   "(not converted)\n")
    assert (tmp_path / "out" / "x_D_SONG.mid").read_bytes() == midi
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x_D_SONG.mid"]

    (tmp_path / "not.wad").write_bytes(b"MThd" + bytes(20))
    with pytest.raises(ValueError, match="not a WAD file"):
        corpora.wad_lumps(tmp_path / "not.wad")
    data = wad.read_bytes()
    (tmp_path / "cut.wad").write_bytes(data[:-10])  # the directory cut short
    with pytest.raises(ValueError, match="damaged WAD"):
        corpora.wad_lumps(tmp_path / "cut.wad")
    table_at = struct.unpack("<i", data[8:12])[0]
    bad = bytearray(data)
    bad[table_at + 16 + 4:table_at + 16 + 8] = struct.pack("<i", 10 ** 6)  # D_SONG's size past the end
    (tmp_path / "bad.wad").write_bytes(bytes(bad))
    with pytest.raises(ValueError, match="lump 1 'D_SONG' lies outside the file"):
        corpora.wad_lumps(tmp_path / "bad.wad")


def test_parallel_export_writes_what_serial_export_writes(tmp_path, capsys):
    """The same first `limit` pieces that can be written, the same bytes, whatever the workers; a piece
    that fails is skipped with one line and the next one taken in its place."""
    folk = corpora.corpus_pieces("folk")[:6]
    pieces = folk[:2] + [("nope", corpora.m21_piece("bach/no_such_piece"))] + folk[2:]
    written = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}" / "folk"
        assert corpora.export_pieces(out, pieces, 5, fetch.Report(), False, workers=workers) == 5
        written[workers] = {p.name: p.read_bytes() for p in out.iterdir()}
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("warning: skipping folk piece nope: ")
    assert written[1] == written[2]
    assert sorted(written[1]) == sorted(f"{n}.mid" for n, _ in folk[:5])


def test_stale_temporaries_of_a_killed_export_are_removed(tmp_path):
    out = tmp_path / "c"
    out.mkdir()
    (out / ".bwv66.6.abcd_123.6.mid").write_bytes(b"half")  # atomic_path's name for bwv66.6.mid
    (out / ".other.abcd_123.mid").write_bytes(b"not ours")
    (out / "bwv66.6.mid").write_bytes(b"done")
    corpora.remove_stale(out, [out / "bwv66.6.mid"])
    assert sorted(p.name for p in out.iterdir()) == [".other.abcd_123.mid", "bwv66.6.mid"]


def test_every_corpus_has_its_licence():
    assert set(corpora.LICENCES) == set(corpora.CORPORA)
    assert "non-commercial" in corpora.LICENCES["folk"] and "GPL-2.0" in corpora.LICENCES["openttd"]
    # the music21 tune collections list their tunes
    assert len(corpora.corpus_pieces("oneills")) > 1500 and len(corpora.corpus_pieces("airds")) > 1000


def test_tunes_whose_bars_share_one_metre_object_export(tmp_path):
    """music21's ABC reader gives every bar returning to a metre the same TimeSignature object, which its MIDI
    writer refused (8% of the Essen tunes were lost): each bar now gets its own."""
    (name, write), = [p for p in corpora.corpus_pieces("folk") if p[0] == "lot_0068"]
    write(tmp_path / "lot.mid")
    midi = mido.MidiFile(tmp_path / "lot.mid")
    assert [(m.numerator, m.denominator) for t in midi.tracks for m in t if m.type == "time_signature"] == [
        (2, 2), (2, 4), (2, 2), (2, 4), (2, 2)]
    assert sum(m.type == "note_on" and m.velocity for t in midi.tracks for m in t) > 30
