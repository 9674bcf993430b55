"""Generic entry point for any game folder, e.g. a user's own midi_songs/<name>/:

    python -m vgmusic extract
    python -m vgmusic train --game <name>
    python -m vgmusic predict --game <name>
    python -m vgmusic compare [--game GAME ...] [--budget SECONDS]
"""
import sys

COMMANDS = {"extract": "extract", "train": "train", "predict": "sample", "compare": "compare"}

if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
    sys.exit(__doc__.strip() if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help")
             else f"error: unknown command {sys.argv[1]!r}; choose from {', '.join(COMMANDS)}")
command = sys.argv.pop(1)
module = __import__(f"vgmusic.{COMMANDS[command]}", fromlist=["main"])
module.main()
