"""Contamination: near-duplicate scan of 1,000,000 training texts against 10,000 eval texts.

Generates (seeded) texts of about 500 characters from a 50,000-word vocabulary with
Zipf-like word frequencies, plants `--planted` near-duplicates of eval texts in the
training texts (each a paraphrase with edits, substitutions, deletions and insertions,
at 5-15% of its words), then runs the library's `OverlapIndex` (the code path of
`tutelage check`): the eval texts are indexed in the LSH, the training texts stream
through it. Prints the time per phase, peak resident memory, recall of the planted
pairs and the share of false hits among the flagged, against the issue's targets.

The peer is a naive exact n-gram set intersection on the same data: an inverted index
from each eval word n-gram to its eval texts, and for every training text a count of
shared n-grams per eval text, giving the exact Jaccard of every pair that shares one.

    .venv/bin/python benchmarks/contamination.py [--train 1000000] [--eval 10000]
        [--planted 1000] [--seed 0] [--skip-peer]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections import Counter, defaultdict

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tutelage.datasets.contamination import OverlapIndex, OverlapSettings, normalise_many

TARGET_RECALL = 0.95
TARGET_FALSE = 0.001
TARGET_SECONDS = 180.0
TARGET_GIB = 8.0
console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _vocabulary(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(2, 10, size)
    words = {"".join(rng.choice(letters, n)) for n in lengths}
    vocabulary = np.array(sorted(words))
    weights = 1.0 / np.arange(1, len(vocabulary) + 1)
    rng.shuffle(vocabulary)
    return vocabulary, weights / weights.sum()


def _texts(
    rng: np.random.Generator, vocabulary: np.ndarray, p: np.ndarray, count: int, progress: Progress
) -> list[str]:
    task = progress.add_task(f"generating {count:,} texts", total=count)
    texts: list[str] = []
    for start in range(0, count, 50_000):
        n = min(50_000, count - start)
        lengths = rng.integers(60, 90, n)  # about 500 characters with these words
        words = vocabulary[rng.choice(len(vocabulary), size=int(lengths.sum()), p=p)]
        ends = np.cumsum(lengths)
        texts.extend(
            " ".join(words[end - size : end]) for end, size in zip(ends, lengths, strict=True)
        )
        progress.advance(task, n)
    return texts


def _paraphrase(rng: np.random.Generator, text: str, vocabulary: np.ndarray, p: np.ndarray) -> str:
    words = text.split()
    edits = max(1, round(rng.uniform(0.05, 0.15) * len(words)))
    for i in sorted(rng.choice(len(words), edits, replace=False), reverse=True):
        operation = rng.integers(3)
        if operation == 0:
            words[i] = str(vocabulary[rng.choice(len(vocabulary), p=p)])
        elif operation == 1:
            del words[i]
        else:
            words.insert(i, str(vocabulary[rng.choice(len(vocabulary), p=p)]))
    return " ".join(words)


def _peer(
    train: list[str], evals: list[str], n: int, threshold: float, progress: Progress
) -> tuple[set[tuple[int, int]], float]:
    """The naive exact n-gram set intersection; returns its hits and its seconds."""
    started = time.perf_counter()

    def grams(text: str) -> set[tuple[str, ...]]:
        words = text.split()
        return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}

    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    sizes = []
    for j, text in enumerate(normalise_many(evals)):
        mine = grams(text)
        sizes.append(len(mine))
        for gram in mine:
            index[gram].append(j)
    hits: set[tuple[int, int]] = set()
    task = progress.add_task("peer: exact n-gram intersection", total=len(train))
    for start in range(0, len(train), 20_000):
        for i, text in enumerate(normalise_many(train[start : start + 20_000]), start):
            mine = grams(text)
            shared: Counter[int] = Counter()
            for gram in mine:
                if gram in index:
                    shared.update(index[gram])
            for j, count in shared.items():
                if count / (len(mine) + sizes[j] - count) >= threshold:
                    hits.add((i, j))
        progress.advance(task, min(20_000, len(train) - start))
    return hits, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=1_000_000)
    parser.add_argument("--eval", type=int, default=10_000)
    parser.add_argument("--planted", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-peer", action="store_true")
    args = parser.parse_args()
    settings = OverlapSettings()
    rng = np.random.default_rng(args.seed)

    with _progress() as progress:
        started = time.perf_counter()
        vocabulary, p = _vocabulary(rng, 50_000)
        evals = _texts(rng, vocabulary, p, args.eval, progress)
        train = _texts(rng, vocabulary, p, args.train, progress)
        sources = rng.choice(args.eval, args.planted, replace=False)
        places = rng.choice(args.train, args.planted, replace=False)
        planted = set()
        for source, place in zip(sources, places, strict=True):
            train[int(place)] = _paraphrase(rng, evals[int(source)], vocabulary, p)
            planted.add((int(place), int(source)))
        generated = time.perf_counter() - started
        mean_chars = sum(len(t) for t in train[:10_000]) / min(10_000, len(train))

        started = time.perf_counter()
        task = progress.add_task("indexing the eval texts", total=len(evals))
        index = OverlapIndex(evals, settings, progress=lambda n: progress.advance(task, n))
        indexed = time.perf_counter() - started

        started = time.perf_counter()
        task = progress.add_task("scanning the training texts", total=len(train))
        matches = list(index.matches(train, progress=lambda n: progress.advance(task, n)))
        scanned = time.perf_counter() - started
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

        peer_hits: set[tuple[int, int]] | None = None
        peer_seconds = 0.0
        if not args.skip_peer:
            peer_hits, peer_seconds = _peer(
                train, evals, settings.shingle_size, settings.near_threshold, progress
            )

    found = {(m.query, m.reference) for m in matches}
    recall = len(found & planted) / len(planted)
    false_hits = len(found - planted)
    false_share = false_hits / len(found) if found else 0.0
    total = indexed + scanned
    b, r = index.bands
    out = Console()
    out.print(
        f"data: {len(train):,} training texts (mean {mean_chars:.0f} characters), "
        f"{len(evals):,} eval texts, {len(planted):,} planted near-duplicates; "
        f"generated in {generated:.1f} s (not timed)"
    )
    out.print(
        f"settings: word {settings.shingle_size}-grams, Jaccard >= {settings.near_threshold}, "
        f"{settings.num_perm} permutations, LSH {b} bands x {r} rows"
    )
    out.print(f"index {indexed:.1f} s, scan {scanned:.1f} s ({len(train) / scanned:,.0f} texts/s)")
    out.print(f"peak resident memory {peak_gib:.2f} GiB (the generated texts included)")
    out.print(
        f"flagged {len(found):,}: recall of planted {recall:.4f}, false hits {false_hits} "
        f"({false_share:.4%} of flagged)"
    )
    if peer_hits is not None:
        agree = len(peer_hits & found) / len(peer_hits) if peer_hits else 1.0
        out.print(
            f"peer (exact n-gram set intersection): {peer_seconds:.1f} s, "
            f"{peer_seconds / total:.1f}x the MinHash/LSH time; it flags {len(peer_hits):,}, "
            f"recall of planted {len(peer_hits & planted) / len(planted):.4f}; "
            f"MinHash/LSH finds {agree:.4f} of its hits"
        )
    checks = [
        ("recall", recall >= TARGET_RECALL, f"{recall:.4f} >= {TARGET_RECALL}"),
        ("false hits", false_share < TARGET_FALSE, f"{false_share:.4%} < {TARGET_FALSE:.1%}"),
        ("time", total < TARGET_SECONDS, f"{total:.1f} s < {TARGET_SECONDS:.0f} s"),
        ("memory", peak_gib < TARGET_GIB, f"{peak_gib:.2f} GiB < {TARGET_GIB:.0f} GiB"),
    ]
    for name, ok, detail in checks:
        out.print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", highlight=False)
    sys.exit(0 if all(ok for _, ok, _ in checks) else 1)


if __name__ == "__main__":
    main()
