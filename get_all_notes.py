"""Parse every MIDI file under midi_songs/<game>/ into data/, or with --base build the base corpus (see --help)."""
import signal
import sys
from os.path import abspath, dirname

if __name__ == "__main__":
    if hasattr(signal, "pthread_sigmask"):  # first: Ctrl-C and SIGTERM wait until vgmusic.entry handles them
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.path.insert(0, dirname(abspath(__file__)))
    from vgmusic.entry import start
    start("vgmusic.extract")
