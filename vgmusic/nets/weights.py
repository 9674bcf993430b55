"""Reading the `.weights.h5` file Keras writes, without Keras, against the layout an architecture declares.

Keras stores each layer under `layers/<kind>[_<n>]`, kind being the layer's class in snake case and
n counting the earlier layers of that class (not under the names the builders give); it loads by that
path, and so does this file. h5py is imported only once a file is read: composing's imports stay light.
"""
import re
from pathlib import Path

import numpy as np

# Hyper-parameters that define the weights' shapes (and dropout, which does not): every network is built
# from exactly these, and a checkpoint records them.
ARCH_KEYS = ("window", "embed_dim", "units", "layers", "heads", "dense", "dropout")
# Hyper-parameters a network may add, with the value that keeps it as it was: sidecars written before
# them lack them, and so build, load and compose as they always have. style: the LSTM's embedding of the
# window's first token (a --style model's style token) added at every position (vgmusic/nets/lstm.py).
OPTIONAL_KEYS = {"style": False}


def arch_hparams(hp):
    """What a network is built from: every ARCH_KEYS value, and each optional one, its default when absent."""
    return {**{k: hp[k] for k in ARCH_KEYS}, **{k: hp.get(k, v) for k, v in OPTIONAL_KEYS.items()}}

# --- the pieces of a layout: {path inside the layer's group: shape} ----------------------------------

def lstm_shapes(prefix, inputs, units):
    # kernel, recurrent kernel, bias: the four gates side by side in Keras' order i, f, c, o
    return {f"{prefix}vars/0": (inputs, 4 * units), f"{prefix}vars/1": (units, 4 * units),
            f"{prefix}vars/2": (4 * units,)}


def dense_shapes(inputs, outputs, prefix=""):
    return {f"{prefix}vars/0": (inputs, outputs), f"{prefix}vars/1": (outputs,)}


def attention_shapes(dim, heads, key_dim):
    shapes = {}
    for proj in ("query", "key", "value"):
        shapes.update({f"{proj}_dense/vars/0": (dim, heads, key_dim), f"{proj}_dense/vars/1": (heads, key_dim)})
    return {**shapes, "output_dense/vars/0": (heads, key_dim, dim), "output_dense/vars/1": (dim,)}


def norm_shapes(dim):
    return {"vars/0": (dim,), "vars/1": (dim,)}  # gamma, beta


# --- reading ------------------------------------------------------------------------------------------

def read(path, arch, vocab_size, hp):
    """{layer name: its float32 arrays, in layout order} of the network `arch` (a vgmusic.nets.Arch) from
    a Keras `.weights.h5`.

    Raises ValueError with one line naming the file when its layout or a shape does not fit the network,
    or when a value is NaN or infinite: a diverged training run leaves such weights, which fit every
    shape yet make every probability NaN. Anything beside `layers/` (the optimizer's state of a training
    checkpoint) is not read.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights not found")
    what = (f"the {arch.name} network of {vocab_size} tokens ({', '.join(f'{k} {hp[k]}' for k in ARCH_KEYS[:-1])}"
            f"{', style embedding' if hp.get('style') else ''})")
    try:
        with h5py.File(path, "r") as f:
            try:
                arrays = _match(h5py, f, arch.layout(vocab_size, hp))
            except ValueError as e:
                raise ValueError(f"{path}: weights do not fit {what}: {e}") from None
    # h5py's words for a file that is not HDF5 or was cut short (OSError) or damaged inside (the others)
    except (OSError, RuntimeError, KeyError) as e:
        reason = str(e).strip("'\"").splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{path}: not a readable weights file ({reason})") from None
    for name, values in arrays.items():
        if not all(np.isfinite(a).all() for a in values):
            raise ValueError(f"{path}: weights hold NaN or infinite values (layer {name}); "
                             f"retrain or use the other weights file")
    return arrays


def _shown(name):
    """A name in the file as text on one line: h5py gives bytes for one that is not UTF-8 (a damaged file)."""
    name = name.decode("utf-8", "backslashreplace") if isinstance(name, bytes) else name
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in name)


def _match(h5py, f, expected):
    layers = f.get("layers")
    if not isinstance(layers, h5py.Group):
        raise ValueError("no 'layers' group, so not a Keras 3 weights file")
    stored, by_kind = {}, {}
    for key, group in layers.items():
        key, datasets = _shown(key), {}
        if isinstance(group, h5py.Group):
            group.visititems(lambda name, obj: datasets.update({_shown(name): obj})
                             if isinstance(obj, h5py.Dataset) else None)
        if datasets:  # dropout, flatten and the input hold none
            stored[key] = (group, datasets)
            kind, n = re.fullmatch(r"(.*?)(?:_(\d+))?", key).groups()
            by_kind.setdefault(kind, []).append((int(n or 0), key))
    want = {}
    for kind, name, shapes in expected:
        want.setdefault(kind, []).append((name, shapes))
    for kind in sorted(set(by_kind) | set(want)):
        have, need = len(by_kind.get(kind, ())), len(want.get(kind, ()))
        if have != need:
            raise ValueError(f"the file holds {have} '{kind}' layer(s) with weights, the network {need}")
    out = {}
    for kind, layers in want.items():
        for (_, key), (name, shapes) in zip(sorted(by_kind[kind]), layers):
            group, datasets = stored[key]
            # Keras records each layer's own name beside its weights: proof the order is the expected one
            recorded = group["vars"].attrs.get("name") if isinstance(group.get("vars"), h5py.Group) else None
            recorded = recorded.decode() if isinstance(recorded, bytes) else recorded
            if recorded is not None and recorded != name:
                raise ValueError(f"layers/{key} is the layer {recorded!r:.60} where '{name}' belongs")
            if set(datasets) != set(shapes):
                raise ValueError(f"layers/{key} holds {sorted(datasets)}, expected {sorted(shapes)}")
            for sub, shape in shapes.items():
                if datasets[sub].shape != shape:
                    raise ValueError(f"layers/{key}/{sub} has shape {datasets[sub].shape}, expected {shape}")
                if datasets[sub].dtype.kind != "f":  # integers, booleans, complex or text: no weights Keras wrote
                    raise ValueError(f"layers/{key}/{sub} holds {datasets[sub].dtype}, not floating-point numbers")
            out[name] = [np.asarray(datasets[sub][()], np.float32) for sub in shapes]
    return out
