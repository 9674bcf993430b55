"""Download the original songs into midi_songs/<game>/ (checked by sha256), or export offline corpora
(music21's, Debian's game music, Freedoom's WAD lumps; see --help)."""
import signal
import sys
from os.path import abspath, dirname

if __name__ == "__main__":
    if hasattr(signal, "pthread_sigmask"):  # first: Ctrl-C and SIGTERM wait until vgmusic.entry handles them
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.path.insert(0, dirname(abspath(__file__)))
    from vgmusic.entry import start
    start("vgmusic.fetch")
