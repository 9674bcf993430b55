"""Token shards: ids in are ids out, windows as encode.flat_windows cuts them, memory-mapped, atomic rebuilds."""
import json
import shutil

import numpy as np
import pytest

from vgmusic import shards
from vgmusic.encode import PAD, Vocab, flat_windows
from vgmusic.song import Song

SOURCES = ["chorales_a", "chorales_b"]
LICENCES = {"chorales_a": "public domain (test)", "chorales_b": "also public domain (test)"}


@pytest.fixture(scope="module")
def built(corpus_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    # small shards, so songs fall into several files per source
    index = shards.build_shards(folder, SOURCES, corpus_data, LICENCES, shard_tokens=1200)
    return folder, index


def _expected(corpus_data, diatonic=2):
    """What the shards must hold: each song's ids, encoded here directly."""
    enc = shards.default_encoding()
    vocab = Vocab(enc.vocabulary())
    out = []
    for source in SOURCES:
        for row in json.loads((corpus_data / f"{source}.json").read_text())["songs"]:
            song = Song.from_json(row["song"])
            out.append((source, row["file"], {s: vocab.ids(t) for s in range(-diatonic, diatonic + 1)
                                              if (t := enc.song_tokens(song, 0, s))}))
    return out


def test_ids_in_are_ids_out(built, corpus_data):
    folder, index = built
    expected = _expected(corpus_data)
    got = shards.Shards(folder)
    assert [(s["source"], s["file"]) for s in got.songs] == [(a, b) for a, b, _ in expected]
    for i, (_, _, variants) in enumerate(expected):
        assert sorted(v[0] for v in got.songs[i]["variants"]) == sorted(variants)
        for steps, ids in variants.items():
            mapped = got.ids(i, steps)
            assert isinstance(mapped, np.memmap) and mapped.dtype == np.uint16  # read from disk, page by page
            assert np.array_equal(mapped, ids)
    assert got.tokens == shards.default_encoding().vocabulary() and got.spec == shards.default_encoding().spec()
    assert got.vocab_hash == Vocab(got.tokens).hash
    assert got.pad_id == got.tokens.index(PAD) == 0
    assert len(index["shards"]) > len(SOURCES)  # several files per source
    for f in index["shards"]:
        ids = np.load(folder / f["file"], allow_pickle=False)  # plain .npy: no pickle needed to read them
        assert ids.dtype == np.uint16 and ids.ndim == 1 and len(ids) == f["tokens"]
        # a shard ends where the next song would pass 1200 ids; a song's variants never straddle two
        assert len(ids) <= 1200 or sum(s["shard"] == index["shards"].index(f) for s in index["songs"]) == 1
    got.verify()
    a = index["sources"]["chorales_a"]
    assert a["licence"] == "public domain (test)" and a["songs"] == 4 and a["near_copies"] == 0
    assert a["events"] == sum(s["events"] for s in index["songs"] if s["source"] == "chorales_a") > 100
    assert a["tokens"] == sum(v[2] for s in index["songs"] if s["source"] == "chorales_a" for v in s["variants"])


@pytest.mark.parametrize("window, stride, steps, pad", [(75, 3, None, True), (24, 1, (0,), True),
                                                        (40, 40, (0, -2), False), (7, 5, (1,), True)])
def test_windows_are_flat_windows(built, window, stride, steps, pad):
    got = shards.Shards(built[0])
    windows = got.windows(window, stride, steps=steps, pad=pad)
    rows = got.table if steps is None else got.table[np.isin(got.table[:, 1], steps)]
    flat, starts = flat_windows([np.asarray(got.ids(int(r[0]), int(r[1])), np.int32) for r in rows], window,
                                stride, got.pad_id if pad else None)
    expected = flat[starts[:, None] + np.arange(window + 1)[None]]
    assert len(windows) == len(starts) > 0
    assert np.array_equal(windows.take(np.arange(len(windows))), expected)
    # in batches: inputs and many-to-many targets, or the next token only
    x, y = windows.batch(1, 16)
    assert x.dtype == np.int32 and np.array_equal(x, expected[16:32, :-1]) and np.array_equal(y, expected[16:32, 1:])
    _, last = windows.batch(0, 8, many_to_many=False)
    assert np.array_equal(last, expected[:8, -1])


def test_shuffled_windows_are_each_window_once_per_epoch_seeded(built):
    got = shards.Shards(built[0])
    windows = got.windows(32, 4, shuffle=True, seed=7)
    n = len(windows)
    ordered = windows.take(np.arange(n))
    epochs = []
    for epoch in range(2):
        batches = [b for b in windows.batches(50, epochs=1, start_epoch=epoch)]
        assert len(batches) == -(-n // 50) and len(batches[-1][0]) == n - 50 * (len(batches) - 1)
        epochs.append(np.concatenate([x for x, _ in batches]))
        # every window exactly once: the same rows as the ordered windows, in another order
        assert sorted(map(bytes, epochs[-1])) == sorted(map(bytes, ordered[:, :-1]))
    assert not np.array_equal(epochs[0], epochs[1])  # a new order each epoch
    again = np.concatenate([x for x, _ in got.windows(32, 4, shuffle=True, seed=7).batches(50, epochs=1)])
    assert np.array_equal(again, epochs[0])  # the same seed, the same order
    other = np.concatenate([x for x, _ in got.windows(32, 4, shuffle=True, seed=8).batches(50, epochs=1)])
    assert not np.array_equal(other, epochs[0])


def test_a_weighted_source_counts_its_windows_that_many_times(built):
    got = shards.Shards(built[0])
    plain = got.windows(32, 4)
    weighted = got.windows(32, 4, weights={"chorales_b": 3})
    b_only = got.windows(32, 4, songs=[i for i, s in enumerate(got.songs) if s["source"] == "chorales_b"])
    assert len(b_only) and len(weighted) == len(plain) + 2 * len(b_only)
    # every window of chorales_b three times, every other window once
    count = lambda w: {k: v for k, v in zip(*np.unique(  # noqa: E731
        np.array([bytes(r) for r in w.take(np.arange(len(w)))], object), return_counts=True))}
    once, thrice, b = count(plain), count(weighted), count(b_only)
    assert all(thrice[k] == once[k] + 2 * b.get(k, 0) for k in once) and set(thrice) == set(once)
    # a shuffled epoch still reads each (repeated) window once: the oversampled source is 3x as likely
    epoch = np.concatenate([x for x, _ in got.windows(32, 4, shuffle=True, weights={"chorales_b": 3}).batches(64, epochs=1)])
    assert len(epoch) == len(weighted)
    with pytest.raises(ValueError, match="whole number"):
        got.windows(32, 4, weights={"chorales_b": 0})


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 64, 1000, 4097])
def test_permutation_is_a_bijection(n):
    p = shards.Permutation(n, 3)(np.arange(n))
    assert sorted(p.tolist()) == list(range(n))
    if n > 64:
        assert not np.array_equal(p, np.arange(n))


def test_split_holds_out_whole_songs_of_every_source(built):
    got = shards.Shards(built[0])
    train, val = got.split(0.3, seed=1)
    assert len(train) + len(val) == len(got) and not set(train) & set(val)
    assert {got.songs[i]["source"] for i in val} == set(SOURCES)
    assert np.array_equal(got.split(0.3, seed=1)[1], val)
    held = got.windows(16, 16, songs=val, steps=(0,))
    assert set(held.rows[:, 0]) == set(val) and set(held.rows[:, 1]) == {0}
    # the songs a fine-tuned model is judged on stay out of the base model's training
    named = [(got.songs[i]["source"], got.songs[i]["file"]) for i in train[:2]]
    train2, val2 = got.split(0.3, seed=1, held_out=named)
    assert {(got.songs[i]["source"], got.songs[i]["file"]) for i in val2} >= set(named)
    assert not set(train2) & set(val2) and len(train2) + len(val2) == len(got)


def test_rebuild_is_atomic_and_leaves_no_stale_shard(built, corpus_data, tmp_path):
    folder = tmp_path / "s"
    shutil.copytree(built[0], folder)
    names = sorted(p.name for p in folder.iterdir())
    again = shards.build_shards(folder, SOURCES, corpus_data, LICENCES, shard_tokens=1200)
    assert sorted(p.name for p in folder.iterdir()) == names and again == built[1]  # the same content, same files
    old = shards.Shards(folder)
    first = np.array(old.ids(0))
    shards.build_shards(folder, ["chorales_b"], corpus_data, LICENCES, diatonic=0)
    new = shards.Shards(folder)
    assert {s["source"] for s in new.songs} == {"chorales_b"}
    assert sorted(p.name for p in folder.iterdir()) == sorted(["index.json"] + [f["file"] for f in new.files])
    assert np.array_equal(old.ids(0), first)  # a reader that mapped the old shards still reads them
    assert not list(folder.glob(".*"))  # no temporary file left


def test_a_song_in_two_sources_is_stored_once(corpus_data, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    a = json.loads((corpus_data / "chorales_a.json").read_text())
    (data / "a.json").write_text(json.dumps(a))
    b = dict(a, songs=a["songs"][:1] + json.loads((corpus_data / "chorales_b.json").read_text())["songs"])
    b["songs"][0] = dict(b["songs"][0], file="copy.mid")
    (data / "b.json").write_text(json.dumps(b))
    index = shards.build_shards(tmp_path / "s", ["a", "b"], data, diatonic=0)
    assert index["near_copies"] == [["b", "copy.mid", "a", a["songs"][0]["file"]]]
    assert index["sources"]["b"]["songs"] == 3 and index["sources"]["b"]["near_copies"] == 1
    kept = shards.build_shards(tmp_path / "t", ["a", "b"], data, diatonic=0, distinct=False)
    assert kept["sources"]["b"]["songs"] == 4 and not kept["near_copies"]


def test_damaged_shards_are_refused_in_one_line(built, tmp_path):
    folder = tmp_path / "s"
    shutil.copytree(built[0], folder)
    index = json.loads((folder / "index.json").read_text())
    victim = folder / index["shards"][0]["file"]
    np.save(victim, np.arange(10, dtype=np.uint16), allow_pickle=False)
    with pytest.raises(ValueError, match=f"{victim.name}: uint16 ids of shape \\(10,\\), the index says"):
        shards.Shards(folder).shard(0)
    victim.write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot read this shard"):
        shards.Shards(folder).shard(0)
    (folder / "index.json").write_text(json.dumps(dict(index, vocab_hash="0" * 16)))
    with pytest.raises(ValueError, match="does not match its hash"):
        shards.Shards(folder)
    (folder / "index.json").write_text(json.dumps(dict(index, format=99)))
    with pytest.raises(ValueError, match="not token shards of format 1"):
        shards.Shards(folder)
    songs = [dict(s, variants=[[0, 10 ** 9, 5]]) for s in index["songs"]]
    (folder / "index.json").write_text(json.dumps(dict(index, songs=songs)))
    with pytest.raises(ValueError, match="a song lies outside its shard"):
        shards.Shards(folder)


def test_keras_fits_from_the_shards(built):
    """A PyDataset that model.fit reads: one pass an epoch, or an endless stream with steps_per_epoch."""
    import keras
    got = shards.Shards(built[0])
    windows = got.windows(16, 8, steps=(0,), shuffle=True, seed=0)
    model = keras.Sequential([keras.Input((16,), dtype="int32"), keras.layers.Embedding(len(got.tokens), 4),
                              keras.layers.Dense(len(got.tokens))])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=got.pad_id))
    one_pass = shards.keras_dataset(windows, 256)
    assert one_pass.num_batches == -(-len(windows) // 256)
    assert sum(len(x) for x, _ in one_pass) == len(windows)  # iterating it ends after one pass
    history = model.fit(one_pass, epochs=2, verbose=0, shuffle=False)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    endless = shards.keras_dataset(windows, 32, repeat=True)
    assert endless.num_batches is None
    # the stream: every epoch's order in turn, batches running on across epochs (no short batch)
    stream = np.concatenate([endless[i][0] for i in range(2 * len(windows) // 32 + 1)])
    first, second = (np.concatenate([x for x, _ in windows.batches(32, epochs=1, start_epoch=e)]) for e in (0, 1))
    assert np.array_equal(stream[:2 * len(windows)], np.concatenate([first, second]))
    assert all(len(endless[i][0]) == 32 for i in range(5))
    model.fit(endless, epochs=2, steps_per_epoch=3, verbose=0, shuffle=False)
