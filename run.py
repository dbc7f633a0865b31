"""Entry point: ``python run.py dataset=<name> head=<name> [key=value ...]`` (Hydra; ``-m`` for sweeps)."""

from __future__ import annotations

import os
import signal
import sys


def _stopped_while_starting(signum, frame) -> None:
    print(
        f"[softstep] stopped by {signal.Signals(signum).name} while starting; nothing to save",
        file=sys.stderr,
        flush=True,
    )
    sys.stdout.flush()
    os._exit(128 + signum)  # not SystemExit: an import it interrupts (omegaconf's) may turn it into a traceback


if __name__ == "__main__":  # before the slow imports: a stop during start-up is one line, not a traceback
    for _sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(_sig, _stopped_while_starting)

import logging  # noqa: E402 - after the start-up signal handlers
import traceback  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

import experiments  # noqa: E402, F401 - registers ${paper_tuned:...}, which configs/head/*.yaml read

log = logging.getLogger("softstep")


@hydra.main(config_path="configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> str | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return execute(cfg, multirun=HydraConfig.get().mode == RunMode.MULTIRUN)


def execute(cfg: DictConfig, *, multirun: bool = False, signals: bool = True) -> str | None:
    """One composed config: run it and print its summary; every expected failure is one line (exit 2)."""
    from experiments.protocol import preemption  # SLURM's warning signal -> mid-epoch checkpoint -> requeue

    if signals:
        preemption.install()
    from omegaconf.errors import MissingMandatoryValue

    from data.base import DataError
    from experiments.protocol.pipeline import run
    from experiments.protocol.settings import ConfigError
    from softstep.training_types import Stopped

    for note in preemption.resume_notes(cfg):
        print(note, file=sys.stderr, flush=True)
    try:
        line = run(cfg).summary
    except Stopped as e:  # checkpoint saved: requeue (submitit or slurm/array.sbatch), or a stop: exit
        preemption.exit_for_requeue(e)
    except KeyboardInterrupt:  # a second Ctrl-C / SIGTERM, or one outside training: stop now, one line
        print(
            "[softstep] interrupted; finished splits and the last epoch's checkpoint are kept: rerun to resume",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(130)
    except (ConfigError, DataError, OSError, ValueError, MissingMandatoryValue) as e:  # OSError: full disk, ...
        if isinstance(e, MissingMandatoryValue):  # a ??? that validate does not reach (e.g. through an interpolation)
            e = ConfigError(f"missing config value {e.full_key}: set it on the command line ({e.full_key}=...)")
        message = (
            f"{e.strerror or e}: {e.filename}"
            if isinstance(e, OSError) and e.filename and not isinstance(e, (ConfigError, DataError, ValueError))
            else str(e)
        )
        if multirun:  # one bad job must not stop the sweep
            log.error("job failed: %s", message)
            print(f"error: {message}", file=sys.stderr)
            return None
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    except Exception:
        if not multirun:
            raise
        log.error("job failed:\n%s", traceback.format_exc())  # lands in the job's log; the sweep goes on
        print(traceback.format_exc(), file=sys.stderr)
        return None
    print(line)
    return line


if __name__ == "__main__":
    main()
