"""Parse every MIDI file under midi_songs/<game>/ into data/ (see --help)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
try:
    from vgmusic.extract import main  # noqa: E402
except KeyboardInterrupt:  # Ctrl-C while starting up, before main() handles it: nothing was done yet
    sys.exit(130)

if __name__ == "__main__":
    main()
