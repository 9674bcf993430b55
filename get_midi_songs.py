"""Download the original songs into midi_songs/<game>/ (checked by sha256), or export offline corpora (see --help)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vgmusic.fetch import main  # noqa: E402

if __name__ == "__main__":
    main()
