"""Parse every MIDI file under midi_songs/<game>/ into data/ (see --help)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vgmusic.extract import main  # noqa: E402

if __name__ == "__main__":
    main()
