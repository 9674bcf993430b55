"""Measure generated songs against a game's training and held-out songs (see --help)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vgmusic.evaluate import main  # noqa: E402

if __name__ == "__main__":
    main()
