"""Interactive explorers (ipywidgets) for chroma features and theme retrieval.

Notebook: 05_Blank_Removal_and_Normalization.ipynb, 06_Retrieval.ipynb

An explorer holds a few widgets (dropdowns, a checkbox), an ``Image`` widget with the
current figure and an ``Audio`` widget with a player. Every change of a widget calls
:meth:`update`, which recomputes the figure (kept as ``explorer.figure``) and the audio
(``explorer.audio``); both are plain objects, so a notebook can show the initial state as
a static figure as well (exported HTML and viewers without a widget frontend), and tests
can call the callbacks directly without a frontend. Figure and sound travel as widget
values (PNG and WAV bytes), not through ``Output`` widgets: these capture kernel messages,
which is fragile when notebooks run unattended.

The text representation of an explorer names only its current selection (no object
addresses, no widget IDs), so stored notebook outputs stay identical between runs.
"""
import numpy as np

from .errors import CTCChromaError

PUBLISHED_SPEC = 'published:v1_ctc_train1234valid5'
"""The authors' model offered by :class:`ChromaExplorer` (trained on the real MTD)."""

CHROMA_CHOICES = (
    ('CQT chroma', 'cqt'),
    ('CENS', 'cens'),
    ('CTC probabilities (with blank)', 'ctc-probs'),
    ('CTC chroma', 'ctc'),
    ('Published model', 'published'),
)
"""(label, key) of the feature types of :class:`ChromaExplorer`."""

AUDIO_RATE = 11025
"""Sampling rate of the explorers' audio players (Hz): small notebooks, enough for chroma."""


def _widgets():
    import ipywidgets
    return ipywidgets


def _figure(figsize, dpi):
    """A figure outside pyplot's list of open figures (never shown twice by the inline backend)."""
    from matplotlib.figure import Figure
    return Figure(figsize=figsize, dpi=dpi)


def _png(fig):
    """PNG bytes of a figure (the content of an Image widget)."""
    import io
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=fig.dpi)
    return buffer.getvalue()


def audio_clip(audio_path, start=0.0, duration=8.0, sr=AUDIO_RATE):
    """A short excerpt of a recording for an audio player.

    Notebook: 05_Blank_Removal_and_Normalization.ipynb

    Args:
        audio_path (str or Path): Audio file
        start (float): Start of the excerpt in seconds (Default value = 0.0)
        duration (float): Length of the excerpt in seconds (Default value = 8.0)
        sr (int): Sampling rate of the excerpt in Hz (Default value = 11025)

    Returns:
        y (np.ndarray): Mono excerpt (N,), float32
    """
    from .audio import load_audio
    y = load_audio(audio_path, sr=sr)
    first = max(int(round(start * sr)), 0)
    return y[first:first + max(int(round(duration * sr)), 1)]


def chroma_explorer_features(feature_output, key, normalize=True, smoothing=None):
    """The matrix a :class:`ChromaExplorer` shows for a feature type.

    Normalization means L2 normalization of every frame
    (:func:`ctc_chroma_lib.normalization.normalize_columns`):
    of the 13 probabilities for 'ctc-probs', of the 12 chroma probabilities (the blank
    removed and smoothed over ``smoothing`` frames) for 'ctc' and 'published' (then equal to
    ``chroma.postprocess``). Standard chroma ('cqt', 'cens') are normalized by definition and
    shown as they are.

    Args:
        feature_output (tuple): ``(chroma (12 x T), times (T,), probs (13 x T) or None)`` as
            returned by ``compute_chroma(..., return_probs=True)``
        key (str): Feature type, one of the keys of :data:`CHROMA_CHOICES`
        normalize (bool): Normalize every frame (Default value = True)
        smoothing (int): Window of the model's post-processing for 'ctc' and 'published'
            (:attr:`ctc_chroma_lib.kinds.Kind.smoothing`) (Default value = None:
            :data:`ctc_chroma_lib.constants.CTC_SMOOTHING_FRAMES`)

    Returns:
        features (np.ndarray): Matrix (12 x T) or (13 x T for 'ctc-probs')
        times (np.ndarray): Frame times in seconds (T,)
    """
    from .normalization import normalize_columns

    chroma, times, probs = feature_output
    if key in ('cqt', 'cens'):
        return np.asarray(chroma), np.asarray(times)
    if key not in ('ctc-probs', 'ctc', 'published'):
        raise CTCChromaError(f'unknown explorer feature type {key!r}; valid: '
                             + ', '.join(k for _, k in CHROMA_CHOICES))
    if probs is None:
        raise CTCChromaError(f'feature type {key!r} needs class probabilities')
    if key == 'ctc-probs':
        features = np.asarray(probs)
    else:  # smoothed as chroma.postprocess does for the model
        from .chroma import smooth_chroma
        from .constants import CTC_SMOOTHING_FRAMES
        window = CTC_SMOOTHING_FRAMES if smoothing is None else smoothing
        features = smooth_chroma(np.asarray(probs)[:12], window).astype(np.float32)
    return (normalize_columns(features) if normalize else features), np.asarray(times)


class _WidgetApp:
    """Displays as its widget (``self.widget``) in a notebook, as its ``repr`` in text."""

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle['text/plain'] = repr(self)
        return bundle


class ChromaExplorer(_WidgetApp):
    """Pick an item and a feature type, toggle normalization, see and hear the result.

    Notebook: 05_Blank_Removal_and_Normalization.ipynb

    Args:
        items (list of dataset.Item): Items to choose from (e.g. the test fold)
        feature_fn (callable): ``feature_fn(audio_path, kind) -> (chroma, times, probs)``
            with kind 'cqt', 'cens', 'ctc' or a published spec (Default value = None:
            ``chroma.compute_chroma(..., return_probs=True)``, cached on disk)
        item (str): MTD ID selected first (Default value = None: the first item)
        feature (str): Feature type selected first, a key of :data:`CHROMA_CHOICES`
            (Default value = 'ctc')
        normalize (bool): Normalization selected first (Default value = True)
        published (str): Model spec behind 'published' (Default value = PUBLISHED_SPEC)
        clip_seconds (float): Length of the audio clip; 0 for no audio (Default value = 10.0)
        figsize (tuple): Figure size in inches (Default value = (10, 3.2))
        dpi (int): Figure resolution (Default value = 72)
    """

    def __init__(self, items, feature_fn=None, item=None, feature='ctc', normalize=True,
                 published=PUBLISHED_SPEC, clip_seconds=10.0, figsize=(10, 3.2), dpi=72):
        widgets = _widgets()
        if not items:
            raise CTCChromaError('the explorer needs at least one item')
        self.items = {it.mtd_id: it for it in items}
        if feature_fn is None:
            from .chroma import compute_chroma

            def feature_fn(audio_path, kind):
                return compute_chroma(audio_path, kind, return_probs=True)
        self.feature_fn = feature_fn
        self.published = published
        self.clip_seconds = clip_seconds
        self.figsize, self.dpi = figsize, dpi
        self._cache = {}
        self.item_menu = widgets.Dropdown(
            options=[(f'{it.mtd_id} ({it.composer}, {it.title})', it.mtd_id) for it in items],
            value=item or items[0].mtd_id, description='Item')
        self.feature_menu = widgets.Dropdown(options=list(CHROMA_CHOICES), value=feature,
                                             description='Feature')
        self.normalize_box = widgets.Checkbox(value=normalize, description='Normalize frames')
        self.image = widgets.Image(format='png')
        self.player = widgets.Audio(format='wav', autoplay=False, loop=False)
        self.widget = widgets.VBox([
            widgets.HBox([self.item_menu, self.feature_menu, self.normalize_box]),
            self.image, self.player])
        self.figure = None
        self.audio = None
        self._audio_item = None
        for control in (self.item_menu, self.feature_menu, self.normalize_box):
            control.observe(self.update, names='value')
        self.update()

    def _kind(self, key):
        return {'ctc-probs': 'ctc', 'published': self.published}.get(key, key)

    def features(self):
        """Matrix and frame times of the current selection (:func:`chroma_explorer_features`)."""
        item = self.items[self.item_menu.value]
        kind = self._kind(self.feature_menu.value)
        cache_key = (item.mtd_id, kind)
        if cache_key not in self._cache:
            self._cache[cache_key] = tuple(self.feature_fn(item.audio_path, kind))
        smoothing = None
        if self.feature_menu.value in ('ctc', 'published'):
            from .kinds import resolve
            smoothing = resolve(kind).smoothing
        return chroma_explorer_features(self._cache[cache_key], self.feature_menu.value,
                                        self.normalize_box.value, smoothing)

    def make_figure(self):
        """A new figure of the current selection, with the theme's alignment overlaid."""
        from .plots import plot_item_features

        item = self.items[self.item_menu.value]
        features, times = self.features()
        label = {key: text for text, key in CHROMA_CHOICES}[self.feature_menu.value]
        normalized = self.normalize_box.value or self.feature_menu.value in ('cqt', 'cens')
        fig = _figure(self.figsize, self.dpi)
        ax = fig.add_subplot()
        plot_item_features(item, features, times, ax, vmax=1.0, legend=False,
                           title=f'{item.mtd_id}: {label}, '
                                 + ('normalized frames' if normalized else 'not normalized')
                                 + ' (red: theme notes, blue: weak alignment)',
                           colorbar_label='unit-norm frames' if normalized else 'probability')
        fig.tight_layout()
        return fig

    def update(self, change=None):
        """Redraw the figure (and reload the audio when the item changed)."""
        self.figure = self.make_figure()
        self.image.value = _png(self.figure)
        if self.clip_seconds and self._audio_item != self.item_menu.value:
            from IPython.display import Audio
            item = self.items[self.item_menu.value]
            clip = audio_clip(item.audio_path, duration=self.clip_seconds)
            self.audio = Audio(clip, rate=AUDIO_RATE)
            self.player.value = self.audio.data
            self._audio_item = self.item_menu.value

    def __repr__(self):
        return (f'ChromaExplorer(item={self.item_menu.value!r}, '
                f'feature={self.feature_menu.value!r}, normalize={self.normalize_box.value})')


def ranking_table(matches, names, relevant=None, top=10):
    """Plain-text table of the best matches of a query.

    Notebook: 06_Retrieval.ipynb

    Args:
        matches (list of retrieval.Match): Ranked matches (best first)
        names (dict): Recording name -> display name (e.g. its MTD ID)
        relevant (str): Name of the relevant recording, marked with '*' (Default value = None)
        top (int): Number of rows (Default value = 10)

    Returns:
        table (str): One line per match: rank, recording, cost, match span in seconds
    """
    lines = ['rank  recording   cost   match (s)']
    for m in matches[:top]:
        mark = '*' if m.name == relevant else ' '
        lines.append(f'{m.rank:>4}{mark} {names.get(m.name, m.name):<10} {m.cost:6.3f}   '
                     f'{m.start_time:5.2f}-{m.end_time:5.2f}')
    return '\n'.join(lines)


class RetrievalExplorer(_WidgetApp):
    """Pick a theme query and a feature type: ranked recordings, matching functions, the match.

    Notebook: 06_Retrieval.ipynb

    The database of a query is the set of recordings of its fold (as in the evaluation);
    the relevant recording is the query item's own.

    Args:
        items (list of dataset.Item): Query items (their recordings form the databases)
        databases (dict): Feature kind -> {str(audio_path): chromagram (12 x M)}
        query (str): MTD ID selected first (Default value = None: the first item)
        kind (str): Feature kind selected first (Default value = None: the first key)
        top (int): Rows of the ranked list (Default value = 10)
        num_curves (int): Matching functions of the best recordings shown (plus the relevant
            one) (Default value = 3)
        stepsize (int): Subsequence-DTW step sizes (Default value = 2)
        clip_seconds (float): Longest match played; 0 for no audio (Default value = 10.0)
        figsize (tuple): Figure size in inches (Default value = (10, 5))
        dpi (int): Figure resolution (Default value = 72)
    """

    def __init__(self, items, databases, query=None, kind=None, top=10, num_curves=3,
                 stepsize=2, clip_seconds=10.0, figsize=(10, 5), dpi=72):
        widgets = _widgets()
        if not items or not databases:
            raise CTCChromaError('the explorer needs items and at least one database')
        self.items = {it.mtd_id: it for it in items}
        self.databases = databases
        self.names = {str(it.audio_path): it.mtd_id for it in items}
        self.top, self.num_curves, self.stepsize = top, num_curves, stepsize
        self.clip_seconds = clip_seconds
        self.figsize, self.dpi = figsize, dpi
        self.query_menu = widgets.Dropdown(
            options=[(f'{it.mtd_id} ({it.composer}, {it.title})', it.mtd_id) for it in items],
            value=query or items[0].mtd_id, description='Query')
        self.kind_menu = widgets.Dropdown(options=list(databases),
                                          value=kind or next(iter(databases)),
                                          description='Features')
        self.ranking = widgets.HTML()
        self.image = widgets.Image(format='png')
        self.match_label = widgets.HTML()
        self.player = widgets.Audio(format='wav', autoplay=False, loop=False)
        self.widget = widgets.VBox([widgets.HBox([self.query_menu, self.kind_menu]),
                                    widgets.HBox([self.ranking, self.image]),
                                    widgets.HBox([self.match_label, self.player])])
        self.matches = []
        self.figure = None
        self.audio = None
        for control in (self.query_menu, self.kind_menu):
            control.observe(self.update, names='value')
        self.update()

    def _documents(self, item):
        database = self.databases[self.kind_menu.value]
        names = sorted(str(it.audio_path) for it in self.items.values() if it.fold == item.fold)
        return [(name, database[name]) for name in names]

    def rank(self):
        """Rank the recordings of the query's fold for the current selection.

        Returns:
            matches (list of retrieval.Match): Best first
            query (np.ndarray): Query chromagram (12 x N)
        """
        from .query import query_chromagram
        from .retrieval import rank_documents

        item = self.items[self.query_menu.value]
        X = query_chromagram(item.theme, name=item.mtd_id)
        return rank_documents(X, self._documents(item), stepsize=self.stepsize, n_jobs=1), X

    def relevant_rank(self):
        """Rank of the query item's own recording in the current ranking (1 = first)."""
        relevant = str(self.items[self.query_menu.value].audio_path)
        return next(m.rank for m in self.matches if m.name == relevant)

    def make_figure(self, X):
        """Matching functions of the best recordings and the best match in its chromagram."""
        from .plots import plot_class_matrix, plot_matching_functions
        from .retrieval import compute_matching_function

        item = self.items[self.query_menu.value]
        relevant = str(item.audio_path)
        shown = list(self.matches[:self.num_curves])
        if all(m.name != relevant for m in shown):
            shown.append(next(m for m in self.matches if m.name == relevant))
        database = self.databases[self.kind_menu.value]
        deltas = [compute_matching_function(X, database[m.name], self.stepsize, n_jobs=1)
                  for m in shown]
        labels = [f'rank {m.rank}: {self.names.get(m.name, m.name)}'
                  + (' (relevant)' if m.name == relevant else '') for m in shown]
        fig = _figure(self.figsize, self.dpi)
        ax_delta, ax_best = fig.subplots(2, 1)
        plot_matching_functions(deltas, ax_delta, labels=labels,
                                relevant=[m.name for m in shown].index(relevant),
                                title=f'Query {item.mtd_id} ({self.kind_menu.value}): '
                                      'matching functions')
        best = self.matches[0]
        Y = database[best.name]
        plot_class_matrix(Y, ax_best, vmax=1.0,
                          title=f'Best match in {self.names.get(best.name, best.name)} '
                                f'({best.start_time:.2f}-{best.end_time:.2f} s)')
        ax_best.axvspan(best.start_time, best.end_time, color='tab:red', alpha=0.2)
        fig.tight_layout()
        return fig

    def update(self, change=None):
        """Rank, redraw, and load the best match for playback."""
        from IPython.display import Audio

        item = self.items[self.query_menu.value]
        self.matches, X = self.rank()
        relevant = str(item.audio_path)
        table = ranking_table(self.matches, self.names, relevant=relevant, top=self.top)
        self.ranking.value = (f'<pre>{table}\n\n* relevant recording: rank '
                              f'{self.relevant_rank()} of {len(self.matches)}</pre>')
        self.figure = self.make_figure(X)
        self.image.value = _png(self.figure)
        if self.clip_seconds:
            best = self.matches[0]
            duration = min(best.end_time - best.start_time, self.clip_seconds)
            clip = audio_clip(best.name, start=best.start_time, duration=duration)
            self.audio = Audio(clip, rate=AUDIO_RATE)
            self.player.value = self.audio.data
            self.match_label.value = (f'Best match: {self.names.get(best.name, best.name)}, '
                                      f'{best.start_time:.2f}-{best.end_time:.2f} s')

    def __repr__(self):
        return (f'RetrievalExplorer(query={self.query_menu.value!r}, '
                f'kind={self.kind_menu.value!r})')

