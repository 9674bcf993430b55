"""Where a run's songs go: names reserved before anything is composed, companion files that never
overwrite each other or anything that is not a song's own file.

A song named NAME is NAME.mid with its companions NAME.wav, NAME.png and NAME.song.json (its record)
beside it, the game files --export writes (NAME.mix.ogg, NAME.stem-bass.wav, NAME.cue.json ...:
vgmusic/export.py), and the folder's listening page index.html. Names are reserved atomically (the .mid is
created with O_EXCL) before composing starts, so two runs finishing in the same second never pick the
same name; a reservation is an empty .mid that the song replaces, removed again if the run fails.
"""
import datetime
import glob
import os
import stat
from pathlib import Path

COMPANIONS = (".wav", ".png", ".song.json",
              # --export's (vgmusic/export.py): the mix, the intro and loop body of --split, the cue sheet
              ".mix.ogg", ".mix.wav", ".intro.ogg", ".intro.wav", ".body.ogg", ".body.wav", ".cue.json")
# and a stem per track, NAME.stem-ROLE.ogg / .wav, its ROLE at most export.STEM_CHARS (12) characters
STEM_GLOB = ".stem-*.*"
LONGEST_STEM = ".stem-" + "x" * 12 + ".wav"
MIDI_SUFFIXES = (".mid", ".midi")


def temporary_name(path):
    """The longest name store.atomic_path gives a file while writing it: .<stem>.<8 random><suffixes>."""
    return f".{path.stem}.{'x' * 8}{''.join(path.suffixes)}"


def files_of(midi):
    """The song's own files: its MIDI, then each companion, then the stems already there."""
    midi = Path(midi)
    stems = sorted(midi.parent.glob(glob.escape(midi.stem) + STEM_GLOB))  # the name taken literally
    return [midi] + [midi.with_suffix(s) for s in COMPANIONS] + stems


def check_name(midi):
    """Refuse, before composing, a song path whose files could not all be written or would overwrite
    something that is not a song's file: one line naming the path and the problem."""
    midi = Path(midi)
    if midi.suffix.lower() not in MIDI_SUFFIXES:
        raise ValueError(f"{midi}: a song's name must end in .mid or .midi (its audio, piano roll and record "
                         f"take the same name with their own suffixes)")
    folder = midi.parent
    try:
        limit = os.pathconf(folder if folder.exists() else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    for path in files_of(midi) + [midi.with_suffix(LONGEST_STEM)]:
        longest = len(os.fsencode(temporary_name(path)))
        if longest > limit:
            raise ValueError(f"{midi}: name too long: its files' temporary names would pass the "
                             f"{limit}-byte limit of a file name here by {longest - limit} (shorten it)")
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue
        except OSError as e:
            raise ValueError(f"{path}: cannot be checked ({e.strerror})") from None
        if not stat.S_ISREG(mode):
            kind = ("a folder" if stat.S_ISDIR(mode) else "a symbolic link" if stat.S_ISLNK(mode)
                    else "a device or other special file")
            raise ValueError(f"{path}: is {kind}, not a song's file; choose another name")


def reserve(paths):
    """Create each path empty and exclusively; True if all were free (else none is left reserved)."""
    made = []
    for path in paths:
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            release(made)
            return False
        made.append(path)
    return True


def release(paths):
    """Remove reservations that no song replaced (empty files), after a failure or an interruption."""
    for path in paths:
        try:
            if path.stat().st_size == 0:
                path.unlink()
        except OSError:
            pass


def song_paths(out, folder, num, now=None):
    """The MIDI paths of a run's songs, reserved: --out (NAME.mid, or NAME-1.mid ... for several songs),
    else <timestamp>.mid in `folder`, a counter added when a name or any companion of it is taken."""
    if out:
        out = Path(out)
        paths = [out] if num == 1 else [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(1, num + 1)]
        for p in paths:
            check_name(p)
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        return paths  # names the user chose: the song replaces what is there, companions included
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp, n = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S"), 1
    while True:
        name = stamp if n == 1 else f"{stamp}-{n}"
        paths = [folder / f"{name}.mid"] if num == 1 else [folder / f"{name}-{i}.mid" for i in range(1, num + 1)]
        taken = any(f.exists() or f.is_symlink() for p in paths for f in files_of(p))
        if not taken and reserve(paths):
            return paths
        n += 1
