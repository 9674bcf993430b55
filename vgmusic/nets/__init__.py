"""The networks, one module per family, and the registry that finds them by name.

Each family's module holds everything about its networks side by side: the Keras definition (build,
which imports Keras only when called), what Keras saves of it (layout), the NumPy forward pass that
composes without TensorFlow with its stepper, and the stepper over the Keras layers that the NumPy one
is tested against (tests/test_infer.py). Code that depends on the architecture asks its Arch here
rather than comparing names.

Importing this package imports neither TensorFlow nor Keras, nor h5py until a weights file is read.
"""
from . import bidirectional, lstm, rotary, transformer, weights
from .base import Arch, NumpyNet
from .weights import ARCH_KEYS, OPTIONAL_KEYS, arch_hparams

# the one list of the architectures, in the order help texts and comparisons show them
ARCHS = {arch.name: arch for arch in (lstm.LSTM, bidirectional.BILSTM, bidirectional.ATTENTION,
                                      transformer.TRANSFORMER, rotary.ROTARY)}

__all__ = ["ARCHS", "ARCH_KEYS", "OPTIONAL_KEYS", "Arch", "NumpyNet", "arch_hparams", "get", "layout", "numpy_net",
           "read_weights"]


def get(arch):
    """The Arch named `arch`, or a one-line ValueError that lists the known ones."""
    if not isinstance(arch, str) or arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)}")
    return ARCHS[arch]


def layout(arch, vocab_size, hp):
    """What build_model(arch, ...) saves, in model.layers order: [(kind, layer name, {path: shape})]."""
    return get(arch).layout(vocab_size, hp)


def read_weights(path, arch, vocab_size, hp):
    """{layer name: its float32 arrays} of the network `arch` from a Keras `.weights.h5`, or a one-line
    ValueError naming the file (see vgmusic.nets.weights.read)."""
    return weights.read(path, get(arch), vocab_size, hp)


def numpy_net(arch, vocab_size, hparams, weights_path):
    """The network `arch` with the weights Keras saved at weights_path, run in NumPy: .forward(ids),
    .stepper(batch), .window, .arch."""
    spec = get(arch)
    return spec.numpy_net(spec, vocab_size, hparams, weights_path)
