import warnings
import matplotlib
matplotlib.use('Agg')
warnings.filterwarnings('ignore', message='.*Kernel is running over TCP.*')

import pytest


@pytest.fixture
def tqdm_bars(monkeypatch):
    "tqdm.auto.tqdm replaced by a stand-in that records each bar as [desc, total, steps]; returns that list."
    import tqdm.auto
    bars = []
    class Bar:
        def __init__(self, total=None, desc=None, **kw): self.rec = [desc, total, 0]; bars.append(self.rec)
        def update(self, n=1): self.rec[2] += n
        def set_postfix(self, *a, **kw): pass
        def close(self): pass
    monkeypatch.setattr(tqdm.auto, 'tqdm', Bar)
    return bars
