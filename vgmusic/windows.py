"""Training windows read from token shards (vgmusic.shards) in bounded memory: any window by its number,
a seeded shuffle computed index by index, batches for model.fit as a generator or a keras PyDataset.

Windows are cut exactly as encode.flat_windows cuts them (windows never cross songs, `window` pads
before each song, the last window of each song always kept), without an array of window starts, so
memory grows with the number of songs, never with tokens or windows.
"""
import math

import numpy as np


class Permutation:
    """A seeded pseudo-random permutation of range(n), computed for any indices at once and in O(1)
    memory: a Feistel network over the next even power of two, walking the cycle until it lands below n."""
    ROUNDS = 6

    def __init__(self, n, seed):
        self.n = int(n)
        bits = max(2, (self.n - 1).bit_length())
        self.half = np.uint64((bits + 1) // 2)
        self.mask = np.uint64((1 << int(self.half)) - 1)
        self.keys = np.random.default_rng(seed).integers(0, 2 ** 63, self.ROUNDS, dtype=np.uint64)

    def _round(self, r, key):
        with np.errstate(over="ignore"):
            x = (r ^ key) * np.uint64(0x9E3779B97F4A7C15)
            x ^= x >> np.uint64(29)
            x *= np.uint64(0xBF58476D1CE4E5B9)
            x ^= x >> np.uint64(32)
        return x & self.mask

    def _encrypt(self, x):
        left, right = x >> self.half, x & self.mask
        for key in self.keys:
            left, right = right, left ^ self._round(right, key)
        return (left << self.half) | right

    def __call__(self, i):
        x = self._encrypt(np.asarray(i, np.uint64))
        out = x >= self.n
        while out.any():
            x[out] = self._encrypt(x[out])
            out = x >= self.n
        return x.astype(np.int64)


class Windows:
    """The training windows of some stored sequences: len() of them, window(k) for any k, batches in a
    seeded shuffled order (a new order each epoch) or in order.

    A sequence of n tokens (n + `window` with the pads) has starts 0, stride, 2*stride, ... and its last,
    each window its `window` + 1 tokens from there; the pads are the pad id, never read from disk."""

    def __init__(self, shards, rows, window, stride=1, pad_id=None, shuffle=False, seed=0):
        if window < 1 or stride < 1:
            raise ValueError(f"window and stride must be at least 1, got {window} and {stride}")
        self.shards, self.window, self.stride, self.pad_id = shards, int(window), int(stride), pad_id
        self.shuffle, self.seed = bool(shuffle), seed
        self.padding = self.window if pad_id is not None else 0
        rows = rows[rows[:, 4] + self.padding - self.window > 0]  # sequences long enough for one window
        self.rows = rows
        self.n = rows[:, 4] + self.padding - self.window  # start positions in a sequence: 0 .. n-1
        self.regular = -(-self.n // self.stride)
        self.counts = self.regular + ((self.n - 1) % self.stride != 0)
        self.ends = np.cumsum(self.counts)
        self.epoch = 0

    def __len__(self):
        return int(self.ends[-1]) if len(self.ends) else 0

    def order(self, positions, epoch=0):
        """Window numbers at these positions of epoch `epoch`'s order."""
        positions = np.asarray(positions, np.int64)
        if not self.shuffle:
            return positions
        return Permutation(len(self), [int(self.seed), int(epoch)])(positions)

    def take(self, ks):
        """Windows number `ks` as an int32 array of shape (len(ks), window + 1)."""
        ks = np.asarray(ks, np.int64)
        if len(ks) and (ks.min() < 0 or ks.max() >= len(self)):
            raise IndexError(f"window numbers must be from 0 to {len(self) - 1}")
        seq = np.searchsorted(self.ends, ks, side="right")
        local = ks - (self.ends[seq] - self.counts[seq])
        start = np.where(local < self.regular[seq], local * self.stride, self.n[seq] - 1)
        pos = start[:, None] - self.padding + np.arange(self.window + 1)[None]
        out = np.full(pos.shape, self.pad_id if self.pad_id is not None else 0, np.int32)
        rows = self.rows[seq]
        for k in np.unique(rows[:, 2]):
            mine = rows[:, 2] == k
            p = pos[mine]
            real = p >= 0
            block = out[mine]
            block[real] = self.shards.shard(int(k))[(rows[mine, 3][:, None] + p)[real]]
            out[mine] = block
        return out

    def batch(self, b, batch_size, epoch=0, many_to_many=True):
        """Batch b of epoch `epoch`: (inputs, targets), int32; the last batch of an epoch may be short.
        IndexError past the last batch, so `for x, y in dataset` ends after one pass."""
        lo = b * batch_size
        if not 0 <= lo < len(self):
            raise IndexError(f"batch {b} of {math.ceil(len(self) / batch_size)}")
        w = self.take(self.order(np.arange(lo, min(lo + batch_size, len(self))), epoch))
        return w[:, :-1], (w[:, 1:] if many_to_many else w[:, -1])

    def stream_batch(self, i, batch_size, many_to_many=True):
        """Batch i of the endless stream of windows, one epoch's order after another with no short batch
        between them (as tf.data's shuffle().repeat().batch() in train.py)."""
        if not len(self):
            raise IndexError("no windows: the songs are shorter than the window")
        positions = np.arange(i * batch_size, (i + 1) * batch_size, dtype=np.int64)
        epochs, local = positions // len(self), positions % len(self)
        ks = np.concatenate([self.order(local[epochs == e], int(e)) for e in np.unique(epochs)])
        w = self.take(ks)
        return w[:, :-1], (w[:, 1:] if many_to_many else w[:, -1])

    def batches(self, batch_size, epochs=None, many_to_many=True, start_epoch=0):
        """A generator of (inputs, targets) batches: `epochs` passes, each in a new order when shuffled, the
        last batch of each maybe short; epochs=None: the endless stream (stream_batch), for
        model.fit(windows.batches(64), steps_per_epoch=50)."""
        if epochs is None:
            i = start_epoch * math.ceil(len(self) / batch_size)
            while True:
                yield self.stream_batch(i, batch_size, many_to_many)
                i += 1
        for epoch in range(start_epoch, start_epoch + epochs):
            for b in range(math.ceil(len(self) / batch_size)):
                yield self.batch(b, batch_size, epoch, many_to_many)

    def tokens(self):
        """Target tokens a pass over these windows trains on (pads not counted)."""
        return int(self.rows[:, 4].sum())


def keras_dataset(windows, batch_size, many_to_many=True, repeat=False, **kwargs):
    """The windows as a keras.utils.PyDataset for model.fit: one pass an epoch in a new seeded order each
    (on_epoch_end), or with `repeat` the endless stream (Windows.stream_batch) for fit(..., steps_per_epoch=N),
    which continues where the last epoch stopped. `kwargs` go to PyDataset (workers, use_multiprocessing, max_queue_size)."""
    import keras

    class ShardWindows(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(**kwargs)
            self.windows, self.batch_size, self.epoch = windows, batch_size, 0
            self.per_epoch = math.ceil(len(windows) / batch_size)
            if not self.per_epoch:
                raise ValueError("no training windows: the songs are shorter than the window")

        @property
        def num_batches(self):
            return None if repeat else self.per_epoch

        def __getitem__(self, i):
            if repeat:  # batch i of the endless stream: the epochs' orders one after another
                return self.windows.stream_batch(i, self.batch_size, many_to_many)
            return self.windows.batch(i, self.batch_size, self.epoch, many_to_many)

        def on_epoch_end(self):
            if not repeat:
                self.epoch += 1

    return ShardWindows()
