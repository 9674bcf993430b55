"""Compose without TensorFlow: the networks as a NumPy forward pass.

Importing TensorFlow costs seconds of CPU before a note is written, while sampling a song costs
milliseconds. So composing reads the very `.weights.h5` file Keras wrote and runs the same layers in
NumPy, in float32 like Keras; tests/test_infer.py proves they give the Keras models' probabilities,
architecture by architecture. Each network's NumPy pass lives beside its Keras definition in
vgmusic.nets; this module is the entry point composing has always used.

Nothing here may import tensorflow or keras, not even through another vgmusic module.
"""
from .nets import ARCH_KEYS as HPARAMS  # noqa: F401
from .nets import ARCHS as _ARCHS
from .nets import numpy_net
from .nets.layers import erf, gelu, softmax  # noqa: F401

ARCHS = tuple(_ARCHS)

# NumpyNet(arch, vocab_size, hparams, weights_path) -> the architecture's net: .forward(ids) gives logits,
# .stepper(batch) the sampling state, .window and .arch what it was built with. A function under the name
# of the class it once was, which callers construct.
NumpyNet = numpy_net
