"""Learn the style of video game soundtracks from MIDI files and compose new songs.

One song type through every stage (song: Song > Track > Note), one module per stage: midi (files <->
Songs), extract (MIDI files -> Songs in data/), encode (Songs <-> tokens), nets and model (the networks),
train, compose (a model and a request -> Songs), render (audio), roll (pictures). `config` holds every
default, `cli` the command layer.
"""
import os
from pathlib import Path

__version__ = "0.4.0"

# The project's root: scripts run from any working directory, so every default path hangs off this.
ROOT = Path(__file__).resolve().parent.parent


def quiet_tensorflow():
    """Import TensorFlow and Keras with their start-up chatter silenced.

    TF's C++ core writes oneDNN/CUDA notices straight to file descriptor 2 before
    its logging is configured, so TF_CPP_MIN_LOG_LEVEL alone does not catch them.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import sys
    if "tensorflow" in sys.modules:
        import keras
        return keras
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf
        import keras
        tf.get_logger().setLevel("ERROR")
        tf.config.list_physical_devices()  # the CUDA probe prints here, not at import
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return keras
