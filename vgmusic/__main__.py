"""Generic entry point for any game folder, e.g. a user's own midi_songs/<name>/:

    python -m vgmusic extract                       parse midi_songs/ into data/ (= get_all_notes.py)
    python -m vgmusic train --game <name>           train a model on one folder (or a combined game)
    python -m vgmusic predict --game <name>         compose a song with it
    python -m vgmusic evaluate --game <name> [--generated DIR ...]   measure songs (= evaluate.py)
    python -m vgmusic compare [--game GAME ...] [--budget SECONDS]   compare the architectures
    python -m vgmusic retrain                       retrain the four shipped models from the songs
    python -m vgmusic calibrate --game <name>       match a model's rhythm to its training songs' (calibrate.py)

Each command's --help lists its flags.
"""
import signal
import sys

# first of all (only the package's __init__, a few milliseconds, came before): Ctrl-C and SIGTERM wait
# until entry.start handles them
if hasattr(signal, "pthread_sigmask"):
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
from .entry import start  # noqa: E402

# command -> (module, function)
COMMANDS = {"extract": ("extract", "main"), "train": ("train", "main"), "predict": ("predict", "main"),
            "evaluate": ("evaluate", "main"), "compare": ("compare", "main"), "retrain": ("train", "retrain_main"),
            "calibrate": ("calibrate", "main")}

if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
    print(__doc__.strip())
    sys.exit(0 if len(sys.argv) >= 2 else 2)
if sys.argv[1] not in COMMANDS:
    sys.exit(f"error: unknown command {sys.argv[1]!r}; choose from {', '.join(COMMANDS)}")
command = sys.argv.pop(1)
sys.argv[0] = f"python -m vgmusic {command}"  # what --help and errors call it
module, function = COMMANDS[command]
start(f"vgmusic.{module}", function)
