"""The form a song is composed in: phrases of whole bars, some of them replays of an earlier phrase.

Trained on a few dozen one-minute songs, no network here learned to return to its own material (sampled
without a form, the shipped models return to earlier bars in 2-14% of bars, against 38-58% in the songs:
docs/eval/ and the README). So a song is built the way these songs are: A A' B A' (A' replays A and
composes a new last bar, a different cadence). The network composes every new phrase, and while a phrase
is replayed it hears it, so what follows continues from it. A FormPlan is one row of vgmusic.decode's loop.
"""
import re
from collections import deque

from .decode import BEATS_PER_BAR, MAX_TOKENS_PER_BAR, clip, fit_token
from .encode import GRID


def parse_form(form):
    """'AA'BA'' -> [('A', False), ('A', True), ('B', False), ('A', True)]; ' varies a repeat's last bar."""
    if not re.fullmatch(r"(?:[A-Za-z]'?)+", form.replace(" ", "")):
        raise ValueError(f"--form must be letters, each optionally followed by ' (e.g. \"AA'BA'\"), got {form!r}")
    return [(m[0].upper(), m[1] == "'") for m in re.findall(r"([A-Za-z])('?)", form)]


class FormPlan:
    """One song being written: where it is in time and in the form, and what it must replay.
    It ends after `events` events at a phrase's end, or, given `bars`, after exactly that many bars.
    `preroll` bars are composed first and dropped, so the song starts mid-music (a loop has no
    beginning); `song` and `length` are the song's own tokens and grid steps. `intro` bars come first,
    composed freely and never replayed (a section labelled "intro", outside the form), and the form
    follows them: the body, which a game loops after the intro has played once."""
    scored = False
    repeat_penalty = None  # a song's own (its character, vgmusic/characters.py); None: the sampling's

    def __init__(self, enc, vocab, form, phrase_bars, events, bars=0, preroll=0, intro=0):
        self.enc, self.vocab, self.form, self.events = enc, vocab, parse_form(form), events
        self.bar = BEATS_PER_BAR * GRID
        self.phrase, self.total = phrase_bars * self.bar, (bars + intro if bars else 0) * self.bar
        self.intro, self.body_at = intro * self.bar, 0  # the intro's grid steps; where its body's tokens start
        self.tokens, self.now, self.section, self.t0, self.skip = [], 0, -1, 0, 0
        self.phrases = {}  # (letter, cycle) -> (tokens, index where its last bar starts)
        self.sections = []  # (start step, label) of each phrase written
        self.forced, self.done = deque(), False
        if preroll:  # a phrase outside the form, none of it kept
            self.start, self.end, self.key, self.recording, self.count = 0, preroll * self.bar, None, None, 0
        elif intro:
            self.start_intro()
        else:
            self.next_section()

    def start_intro(self):
        self.start, self.end, self.key, self.recording, self.count = self.now, self.now + self.intro, "intro", None, 0
        self.sections.append((self.length, "intro"))

    @property
    def replays(self):
        return bool(self.forced)

    @property
    def song(self):
        return self.tokens[self.skip:]

    @property
    def length(self):
        return self.now - self.t0

    def next_section(self):
        self.section += 1
        self.start = self.now
        self.end = self.now + self.phrase if not self.total else min(self.now + self.phrase, self.t0 + self.total)
        letter, vary = self.form[self.section % len(self.form)]
        cycle = self.section // len(self.form)
        self.key = (letter, cycle)  # each pass through the form has new themes
        mark = "'" if vary else ""
        self.sections.append((self.length, f"{letter}{cycle + 1 if cycle else ''}{mark}"))
        self.recording, self.cut, self.count = None, None, 0
        if self.key in self.phrases:
            tokens, cut = self.phrases[self.key]
            self.forced = deque(tokens[:cut] if vary else tokens)
        else:
            self.recording = []

    def choose(self, sampled):
        """The token this row feeds next: a replayed one, or the sample fitted to the phrase's end."""
        if self.forced:
            return self.forced.popleft()
        self.count += 1
        return fit_token(self.enc, self.vocab, self.vocab.tokens[sampled], self.now, self.end, self.count,
                         MAX_TOKENS_PER_BAR * self.phrase // self.bar, self.forced)

    def feed(self, token_id, nats=None):
        self.tokens.append(token_id)
        if self.recording is not None:
            self.recording.append(token_id)
        self.now += self.enc.advance(self.vocab.tokens[token_id])
        if self.recording is not None and self.cut is None and self.now >= self.end - self.bar:
            self.cut = len(self.recording)
        if self.now < self.end:
            return
        if self.key is None:  # the preroll is over: the song starts here
            self.t0, self.skip = self.now, len(self.tokens)
            return self.start_intro() if self.intro else self.next_section()
        if self.key == "intro":  # the body starts here, its form from the beginning
            self.body_at = len(self.tokens) - self.skip
            return self.next_section()
        if self.recording is not None:
            self.phrases[self.key] = (self.recording, self.cut or len(self.recording))
        if self.total:
            finished = self.length >= self.total
        else:
            finished = self.enc.events([self.vocab.tokens[t] for t in self.song[self.body_at:]]) >= self.events
        if finished and not self.forced:
            self.done = True
        else:
            # a replay longer than what is left (--bars) is cut at the song's end by the next phrase
            self.next_section()
            if self.total and self.forced:
                self.forced = deque(clip(self.enc, self.vocab, list(self.forced), self.end - self.now))
