"""The recorders a search runs with from the command line and the demo (`pba.search.recorder`):
a progress bar, the plots and summary.md at the end, and TensorBoard logs.

    from pba.reporting.recorders import search_recorders
    run_search(config, "runs/quick", recorders=search_recorders(progress=True))
"""

from __future__ import annotations

from tqdm import tqdm

from pba.augmentation.schedule import Schedule
from pba.reporting.plot import plot_population, plot_schedule
from pba.reporting.progress import loading_bar
from pba.reporting.tensorboard import SearchBoard
from pba.search import rundir
from pba.search.events import Event, Exploit
from pba.search.pbt import SearchState
from pba.search.recorder import Recorder
from pba.search.rundir import SearchDir
from pba.search.summary import summary_markdown


def search_recorders(*, progress: bool = True, tensorboard: bool = False) -> list[Recorder]:
    """What `pba search` records: a bar and a line per round with `progress`, the plots and
    summary.md, and TensorBoard logs with `tensorboard` (checked to be installed now, before
    minutes of work)."""
    recorders: list[Recorder] = [ProgressBar(enabled=progress), SearchOutputs()]
    if tensorboard:
        recorders.append(SearchBoard())
    return recorders


class SearchOutputs(Recorder):
    """schedule.png, population.png and summary.md of a finished search."""

    def finished(self, run: SearchDir, state: SearchState, schedule: Schedule, best: int) -> None:
        with run.writing("the plots"):
            plot_schedule(schedule, run.path / rundir.PLOT,
                          f"PBA schedule of {run.path} (member {best}, {len(schedule)} epochs)")
            plot_population(run.events(), run.path / rundir.POPULATION_PLOT,
                            f"PBA population of {run.path}: {state.config.population} members, "
                            f"{state.round} rounds",
                            [step.member for step in state.lineage.history(best)])
        run.write_text(rundir.SUMMARY, summary_markdown(run.path))


class ProgressBar(Recorder):
    """A bar for a long data load, then a tqdm bar over all images the search trains on (so its
    rate is images/s and its ETA the search's), titled with the round and epoch, showing the last
    round's best and median validation accuracy; one printed line per round, for logs."""

    def __init__(self, *, enabled: bool) -> None:
        self.verbose = enabled
        self._loading = loading_bar(enabled)
        self.bar: tqdm | None = None

    def loading(self, done: int, total: int) -> None:
        if self._loading is not None:
            self._loading(done, total)

    def started(self, run: SearchDir, state: SearchState, images_per_epoch: int) -> None:
        config = state.config
        self.rounds, self.epochs, self.interval = config.rounds, config.epochs, config.interval
        per_epoch = config.population * images_per_epoch
        self.bar = tqdm(total=per_epoch * config.epochs, initial=per_epoch * state.epoch,
                        unit="img", unit_scale=True, dynamic_ncols=True,
                        disable=not self.verbose, desc=self._title(state))

    def trained(self, images: int) -> None:
        self.bar.update(images)

    def round_done(self, state: SearchState, events: list[Event]) -> None:
        summary = events[-1]  # the Round
        self.bar.set_description(self._title(state))
        self.bar.set_postfix(best=f"{summary.best_accuracy:.3f}",
                             median=f"{summary.median_accuracy:.3f}")
        if self.verbose:
            exploited = sum(isinstance(e, Exploit) for e in events)
            self.bar.write(
                f"round {state.round}/{self.rounds} epoch {state.epoch}/{self.epochs}: best "
                f"{summary.best_accuracy:.4f} (member {summary.best_member}) median "
                f"{summary.median_accuracy:.4f}, {exploited} exploited, "
                f"{summary.images / summary.seconds:.0f} img/s"
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def _title(self, state: SearchState) -> str:
        """The round under way and the epochs it trains."""
        end = min(state.epoch + self.interval, self.epochs)
        current = min(state.round + 1, self.rounds)
        return f"round {current}/{self.rounds} (to epoch {end}/{self.epochs})"
