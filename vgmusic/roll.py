"""A Song -> a piano-roll PNG, drawn with Pillow.

matplotlib's import and savefig cost about 2.7 of the 4.2 CPU seconds of a whole composing run; this
draws the same picture in tens of milliseconds and never imports matplotlib. Time runs across (bars
numbered along the top), pitch up (named at each C). A song of one pitched track has its notes coloured
by the form's section they start in (A' a lighter shade of A's hue), with a legend of the sections. A
song of several tracks has a colour per track, the form as a band under the bar numbers, and its drum
tracks in a strip of their own below the pitched ones, a row per drum key.
"""
import importlib.util
import math
import re
from dataclasses import replace
from functools import lru_cache

from PIL import Image, ImageColor, ImageDraw, ImageFont

from .store import atomic_path
from .theory import note_name

# matplotlib's tab20: ten hues, each dark then light. A theme of the form (A, B, A2...) gets a hue in
# order of first appearance; its varied repeat (A', a new last bar) the light shade of the same hue.
PART_COLOURS = ["#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896",
                "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7",
                "#bcbd22", "#dbdb8d", "#17becf", "#9edae5"]
# tracks: ColorBrewer's Set1 and Paired, none of them a PART_COLOURS colour, so a track is never taken
# for a section of the form's band above it; strong ones first, for an arrangement's few parts
TRACK_COLOURS = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf", "#666666",
                 "#1b9e77", "#e6ab02", "#fb9a99", "#a6cee3", "#b2df8a", "#cab2d6", "#fdbf6f", "#d9b38c",
                 "#fccde5", "#bbbbbb", "#8dd3c7", "#ffed6f"]
NO_SECTION = "#7f7f7f"  # notes before the form's first section
LEGEND_BESIDE = 12  # entries listed beside the roll; more (long songs) go in rows below it
PX_PER_BAR = 45  # the picture widens with the song, so a bar stays readable ...
PAGE_WIDTH = 2000  # ... up to a page's width
# grey lines as matplotlib drew them (grey at some alpha over white), mixed in advance: no alpha pass
BEAT_LINE, BAR_LINE, C_LINE, FRAME = (234, 234, 234), (170, 170, 170), (208, 208, 208), (0, 0, 0)
INK, LIGHT_INK = (0, 0, 0), (90, 90, 90)
PAD = 8
DRUM_ROW = 14  # px: a drum key's row, tall enough that the names beside it don't collide
BAND = 13  # px: the form's band above a multi-track roll
# lone surrogates (a non-UTF-8 file name's bytes, as Python decodes them) cannot be encoded for
# FreeType; control characters would break a line of text into several
UNDRAWABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def bar_label_step(bars, most=32):
    """Label every bar, or every 2nd/4th/8th... bar: never more than `most` labels, so none overlap."""
    step = 1
    while bars / step > most:
        step *= 2
    return step


def part_colours(labels):
    """{label: colour} for the form's part labels, in order of first appearance (see PART_COLOURS)."""
    themes = list(dict.fromkeys(str(p).rstrip("'") for p in labels))
    hue = {t: 2 * (i % (len(PART_COLOURS) // 2)) for i, t in enumerate(themes)}
    return {p: PART_COLOURS[hue[str(p).rstrip("'")] + str(p).endswith("'")] for p in dict.fromkeys(labels)}


def clean(text):
    """Any string, drawable: undrawable characters become U+FFFD (surrogates) or spaces (controls)."""
    return UNDRAWABLE.sub(lambda m: "\ufffd" if m[0] >= "\ud800" else " ", str(text))


@lru_cache(maxsize=None)
def font(size):
    try:  # matplotlib's own face where installed, with its wide Unicode coverage
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


@lru_cache(maxsize=1)
def gm_names():
    """(instrument names by program, drum names from key 35): pretty_midi's tables, read from its
    constants file alone, since importing the package costs 0.15 s. Empty where pretty_midi is missing."""
    try:
        spec = importlib.util.find_spec("pretty_midi")
        where = list(spec.submodule_search_locations)[0]
        spec = importlib.util.spec_from_file_location("_gm_constants", f"{where}/constants.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return list(module.INSTRUMENT_MAP), list(module.DRUM_MAP)
    except Exception:  # any failure only costs the names: the roll says "program 80" instead
        return [], []


def instrument_name(track):
    names = gm_names()[0]
    if track.drum:
        return "drum kit"
    return names[track.program] if 0 <= track.program < len(names) else f"program {track.program}"


def drum_name(key):
    names = gm_names()[1]
    return names[key - 35] if 0 <= key - 35 < len(names) else f"drum {key} ({note_name(key)})"


def fit(text, face, width):
    """`text` cut short with an ellipsis to fit `width` px (a long title or file name, never clipped)."""
    text = clean(text)
    if face.getlength(text) <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if face.getlength(text[:mid] + "…") <= width else (lo, mid - 1)
    return text[:lo] + "…"


def tick_step(end, ppb):
    """Beats between numbered ticks on the bottom axis: a round number, 60 px apart at least."""
    for magnitude in range(12):
        for m in (1, 2, 5):
            step = m * 10 ** magnitude
            if step * ppb >= 60 or step >= end:
                return step
    return 10 ** 12


def ordinal(n):
    return f"{n}{'th' if 10 <= n % 100 < 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def luminance(colour):
    r, g, b = ImageColor.getrgb(colour)[:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def piano_roll(song, path, title=""):
    """A PNG of the Song at `path` (written atomically), titled `title` (else the song's title).
    Returns path; ValueError when the song has no notes."""
    if not any(t.notes for t in song.tracks):
        raise ValueError(f"{path}: no notes to draw")
    bpb, end = song.beats_per_bar, song.end
    if not any(n.onset < end for t in song.tracks for n in t.notes):  # a length before every note
        end = max(n.onset + max(n.duration, 1) for t in song.tracks for n in t.notes)
    # what sounds after the end is not drawn, nor does it stretch the pitch range or name a track
    tracks = [replace(t, notes=[n for n in t.notes if n.onset < end]) for t in song.tracks]
    tracks = [t for t in tracks if t.notes]
    pitched, drums = [t for t in tracks if not t.drum], [t for t in tracks if t.drum]
    bars = max(1, math.ceil(end / bpb - 1e-9))
    by_track = len(tracks) > 1 or bool(drums)
    f_title, f_text, f_small = font(16), font(13), font(11)
    sections = [s for s in song.sections if s.start < end]
    section_colour = part_colours([s.label for s in sections])
    if by_track:  # the legend: (colour, label) entries
        track_colour = {id(t): TRACK_COLOURS[i % len(TRACK_COLOURS)] for i, t in enumerate(tracks)}
        # a long name is cut short, never the instrument after it
        entries = [(track_colour[id(t)], f"{fit(t.role or t.name or f'track {i + 1}', f_small, 150)}: "
                    f"{instrument_name(t)}") for i, t in enumerate(tracks)]
        legend_title = "track"
    else:
        labels = {n: song.section_at(n.onset) for n in set(pitched[0].notes)} if sections else {}
        entries = [(c, p) for p, c in section_colour.items()]
        if "" in labels.values():
            entries.append((NO_SECTION, "no section"))
        legend_title = "part"

    low = min((n.pitch for t in pitched for n in t.notes), default=0)
    high = max((n.pitch for t in pitched for n in t.notes), default=0)
    span = high - low + 5 if pitched else 0  # two semitones of air above and below, as before
    # the height grows with the pitch range, rows between 4 and 24 px, the whole under about 600 px
    row = max(4, min(24, round(min(600, 180 + 6 * span) / span))) if span else 0
    cs = list(range(12 * ((low - 2) // 12 + 1), high + 3, 12)) if pitched else []
    named = cs or (sorted({low, high}) if pitched else [])  # inside one octave, maybe no C: name the ends
    keys = sorted({n.pitch for t in drums for n in t.notes}, reverse=True)  # the kick at the bottom
    drum_labels = [fit(drum_name(k), f_small, 140) for k in keys]
    pitched_h, drums_h = span * row, len(keys) * DRUM_ROW
    # beside the roll while the legend and the loop's words fit its height: below it, a short roll keeps
    beside = len(entries) <= LEGEND_BESIDE and 18 + 16 * len(entries) + (50 if song.loop else 0) <= \
        pitched_h + drums_h

    left = PAD + 18 + 6 + max([f_text.getlength(note_name(p)) for p in named]
                              + [f_small.getlength(s) for s in drum_labels] + [0]) + 6
    left = math.ceil(left)
    legend_w = 0
    if entries and beside:
        entries = [(c, fit(label, f_small, 320)) for c, label in entries]
        legend_w = 12 + 20 + max(f_small.getlength(label) for _, label in entries + [(0, legend_title)])
    loop_text = None
    if song.loop is not None:
        start_bar = song.loop[0] / bpb
        back = f"bar {round(start_bar) + 1}" if abs(start_bar - round(start_bar)) < 1e-6 \
            else f"beat {song.loop[0]:g}"
        loop_text = f"loop:\nback to\n{back}"
    loop_w = f_small.getbbox("back to")[2] + 4 if loop_text else 0
    right = math.ceil(10 + max(legend_w, loop_w) + PAD) if legend_w or loop_w else 24
    width = min(PAGE_WIDTH, 500 + PX_PER_BAR * bars)
    plot_w = max(150, width - left - right)
    width = left + plot_w + right
    ppb = plot_w / end

    title = fit(title or song.title, f_title, width - 2 * PAD)
    top = PAD + (26 if title else 0)
    caption_y, numbers_y = top, top + 15
    plot_top = numbers_y + 16 + (BAND + 3 if by_track and sections else 0)
    plot_bottom = plot_top + pitched_h + drums_h
    bottom = plot_bottom + 4 + 16 + 20  # ticks, their numbers, the axis label
    legend_rows = []
    if entries and not beside:  # flow the entries into rows as wide as the picture
        line, x = [], 0
        for colour, label in [(None, legend_title + "s:")] + [(c, fit(s, f_small, 300)) for c, s in entries]:
            w = f_small.getlength(label) + (20 if colour else 0) + 14
            if line and x + w > width - 2 * PAD:
                legend_rows.append(line)
                line, x = [], 0
            line.append((x, colour, label))
            x += w
        legend_rows.append(line)
    height = bottom + 16 * len(legend_rows) + PAD

    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)

    def x_of(beat):
        return left + round(min(max(beat, 0.0), end) * ppb)

    def y_of(pitch):  # the top of the pitch's row
        return plot_top + (high + 2 - pitch) * row

    # grid: beat lines (where there are few enough to help), bar lines, a line under each C
    if bars <= 64:
        for b in range(1, math.ceil(end)):
            if abs(b / bpb - round(b / bpb)) > 1e-9:
                d.line([(x_of(b), plot_top), (x_of(b), plot_bottom)], fill=BEAT_LINE)
    bar_every = 1 if bpb * ppb >= 3 else bar_label_step(bars)  # a page of solid grey helps nobody
    for b in range(bar_every, bars, bar_every):
        d.line([(x_of(b * bpb), plot_top), (x_of(b * bpb), plot_bottom)], fill=BAR_LINE)
    for c in cs:
        d.line([(left, y_of(c) + row), (left + plot_w, y_of(c) + row)], fill=C_LINE)
    if keys:
        for i in range(1, len(keys)):
            y = plot_top + pitched_h + i * DRUM_ROW
            d.line([(left, y), (left + plot_w, y)], fill=BEAT_LINE)
        if pitched:
            d.line([(left, plot_top + pitched_h), (left + plot_w, plot_top + pitched_h)], fill=LIGHT_INK)

    # notes: a pixel's gap after each where a beat is wide enough, so repeated notes stay apart
    gap = 1 if ppb >= 8 else 0
    inset = max(1, row // 8)
    for t in pitched:
        for n in t.notes:
            colour = track_colour[id(t)] if by_track else (
                section_colour.get(labels[n], NO_SECTION) if sections else PART_COLOURS[0])
            x0, x1 = x_of(n.onset), x_of(n.onset + n.duration) - gap
            y0 = y_of(n.pitch) + inset
            d.rectangle([x0, y0, max(x0 + 1, x1 - 1), y0 + row - 2 * inset - 1], fill=colour)
    row_of = {k: plot_top + pitched_h + i * DRUM_ROW for i, k in enumerate(keys)}
    hit = max(2, round(0.25 * ppb))  # a drum hit is a short stroke, however long its note says it rings
    for t in drums:
        for n in t.notes:
            x0 = x_of(n.onset)
            x1 = min(x0 + hit, left + plot_w) - gap
            d.rectangle([x0, row_of[n.pitch] + 3, max(x0 + 1, x1 - 1), row_of[n.pitch] + DRUM_ROW - 4],
                        fill=track_colour[id(t)])
    d.rectangle([left - 1, plot_top - 1, left + plot_w, plot_bottom], outline=FRAME)

    # the axes: bar numbers and their caption along the top, beats along the bottom, names down the left
    if title:
        d.text((width / 2, PAD), title, font=f_title, fill=INK, anchor="ma")
    step = bar_label_step(bars)
    caption = "bar" if step == 1 else f"bar (every {ordinal(step)} numbered)"
    d.text((left + plot_w / 2, caption_y), caption, font=f_small, fill=LIGHT_INK, anchor="ma")
    for b in range(0, bars, step):
        middle = (x_of(b * bpb) + x_of((b + 1) * bpb)) / 2  # of what is drawn of a last, partial bar
        d.text((middle, numbers_y), str(b + 1), font=f_small, fill=INK, anchor="ma")
    if by_track and sections:  # the form, so it stays visible when colour tells the tracks apart
        band = numbers_y + 16
        for i, s in enumerate(sections):
            x0 = x_of(s.start)
            x1 = x_of(sections[i + 1].start if i + 1 < len(sections) else end)
            colour = section_colour[s.label]
            d.rectangle([x0, band, max(x0, x1 - 1), band + BAND - 1], fill=colour)
            label = clean(s.label)
            if f_small.getlength(label) <= x1 - x0 - 4:
                ink = INK if luminance(colour) > 140 else (255, 255, 255)
                d.text(((x0 + x1) / 2, band + BAND / 2), label, font=f_small, fill=ink, anchor="mm")
    every = tick_step(end, ppb)
    for k in range(0, int(end // every) + 1):
        x = x_of(k * every)
        d.line([(x, plot_bottom), (x, plot_bottom + 4)], fill=INK)
        d.text((x, plot_bottom + 5), f"{k * every:g}", font=f_small, fill=INK, anchor="ma")
    d.text((left + plot_w / 2, plot_bottom + 23), f"beats ({bpb:g} per bar, {song.bpm:g} bpm)",
           font=f_text, fill=INK, anchor="ma")
    for p in named:
        y = y_of(p) + row / 2
        d.line([(left - 5, y), (left - 1, y)], fill=INK)
        d.text((left - 7, y), note_name(p), font=f_text, fill=INK, anchor="rm")
    for k, label in zip(keys, drum_labels):
        d.text((left - 5, row_of[k] + DRUM_ROW / 2), label, font=f_small, fill=INK, anchor="rm")
    for label, y0, h in (("pitch", plot_top, pitched_h), ("drums", plot_top + pitched_h, drums_h)):
        if h and f_text.getlength(label) < h:
            vertical(img, label, f_text, PAD, y0 + h / 2)

    if loop_text:  # the seam: dashed lines where the game jumps back, the words beside the frame
        for beat in song.loop:
            x = x_of(beat)
            for y in range(plot_top - 1, plot_bottom + 1, 10):
                d.line([(x, y), (x, min(y + 5, plot_bottom + 1))], fill=INK, width=2)
        box = d.multiline_textbbox((0, 0), loop_text, font=f_small, spacing=2)
        d.multiline_text((left + plot_w + 6, plot_bottom - box[3]), loop_text, font=f_small, fill=INK,
                         spacing=2)
    if entries and beside:
        x0, y = left + plot_w + 10, plot_top
        d.rectangle([x0, y, x0 + legend_w, y + 18 + 16 * len(entries)], outline=BAR_LINE)
        d.text((x0 + legend_w / 2, y + 3), legend_title, font=f_small, fill=INK, anchor="ma")
        for i, (colour, label) in enumerate(entries):
            swatch(d, colour, label, f_small, x0 + 6, y + 19 + 16 * i)
    for i, line in enumerate(legend_rows):
        for x, colour, label in line:
            if colour is None:
                d.text((PAD + x, bottom + 16 * i), label, font=f_small, fill=INK)
            else:
                swatch(d, colour, label, f_small, PAD + x, bottom + 16 * i)

    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG", compress_level=6)
    return path


def swatch(d, colour, label, face, x, y):
    d.rectangle([x, y + 2, x + 15, y + 11], fill=colour)
    d.text((x + 20, y), label, font=face, fill=INK)


def vertical(img, text, face, x, cy):
    """`text` turned a quarter left, its left edge at x, centred on height cy."""
    w, h = math.ceil(face.getlength(text)), face.size + 4
    mask = Image.new("L", (w, h))
    ImageDraw.Draw(mask).text((0, 0), text, font=face, fill=255)
    mask = mask.rotate(90, expand=True)
    img.paste(INK, (x, round(cy - w / 2)), mask)
