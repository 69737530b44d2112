"""How often the fusion's choice of sources takes noise for skill (mdforecast.fitting, issue 14).

One lead bin's sufficient statistics are drawn for 3 sources and a target that are pure noise, in ``chains``
groups of ``32 / chains`` nearly identical windows (windows of one trajectory whose forecast spans overlap share
most of their truth). For each draw the rule of :func:`mdforecast.fitting._choose` is applied with the windows
counted as independent, and as the groups they are, without the floor of ``MIN_GROUPS`` groups; the rate at which
it picks any source (a false skill) is the table. It backs ``MIN_GROUPS`` and the grouping in docs/model.md.

    python benchmarks/fusion_rule.py            # writes the "fusion-rule" section of docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import publish  # noqa: E402

from mdforecast import fitting  # noqa: E402

WINDOWS, VALUES = 32, 300


def chains(rng: np.random.Generator, n_chains: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``gram (W, 3, 3)``, ``cross (W, 3)``, ``norm (W,)`` of noise sources and target in ``n_chains`` groups of
    nearly identical windows (each a shared draw plus 0.3 of its own)."""
    copies = WINDOWS // n_chains

    def draw(*shape):
        return np.repeat(rng.normal(size=(n_chains, *shape)), copies, 0) + 0.3 * rng.normal(size=(WINDOWS, *shape))

    d, t = draw(3, VALUES), draw(VALUES)
    return np.einsum("wjm,wim->wji", d, d), np.einsum("wjm,wm->wj", d, t), np.einsum("wm,wm->w", t, t)


def false_skill(n_chains: int, draws: int, grouped: bool) -> int:
    """Draws (of ``draws``) in which the rule picks a source, the windows grouped by chain or not."""
    picked = 0
    for seed in range(draws):
        gram, cross, norm = chains(np.random.default_rng(seed), n_chains)
        groups = np.arange(WINDOWS) // (WINDOWS // n_chains) if grouped else np.arange(WINDOWS)
        picked += fitting._choose(gram, cross, norm, groups, [0, 1, 2])[0] != []
    return picked


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = parser.parse_args(argv)
    floor, fitting.MIN_GROUPS = fitting.MIN_GROUPS, 2  # the rule alone
    rows = [(n, false_skill(n, args.draws, False), false_skill(n, args.draws, True)) for n in (2, 4, 8, 16)]
    fitting.MIN_GROUPS = floor
    lines = ["## How often the fusion takes noise for skill", "",
             f"`benchmarks/fusion_rule.py`: {args.draws} draws of one lead bin's statistics, 3 noise sources and a "
             f"noise target over {WINDOWS} windows in groups of nearly identical windows (the rule of "
             "`mdforecast.fitting`, cross-validation and the one-standard-error rule, without its floor of "
             f"`MIN_GROUPS` = {floor} groups). Percent of draws in which a source is picked:", "",
             "| groups | windows per group | counted as independent windows | counted as groups |", "|---|---|---|---|"]
    lines += [f"| {n} | {WINDOWS // n} | {100 * a / args.draws:.0f} % | {100 * b / args.draws:.0f} % |"
              for n, a, b in rows]
    lines += ["", f"With the windows grouped the rule still errs often when there are few groups, hence the floor: "
                  f"a bin with fewer than {floor} groups is persistence."]
    publish("fusion-rule", "\n".join(lines), write=not args.no_write)


if __name__ == "__main__":
    main()
