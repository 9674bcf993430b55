"""Compose a new song in the style of zelda_ocarina_of_time (see --help; settings live in vgmusic/config.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vgmusic.predict import main  # noqa: E402

if __name__ == "__main__":
    main(game="zelda_ocarina_of_time")
