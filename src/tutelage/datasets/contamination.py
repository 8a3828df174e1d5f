"""Exact and near-duplicate overlap between texts: eval contamination and split leakage.

Texts are compared after normalisation (`normalise`): Unicode NFKC, lower case, every
character that is not a letter, mark, digit or white space replaced by a space, and
white space collapsed to single spaces. A text with fewer than `min_words` words after
that is never compared (a two-word prompt such as "hi there" is in every data set).

*Exact* overlap is equal normalised text (similarity 1.0). *Near* overlap is a Jaccard
similarity of at least `near_threshold` between the texts' sets of word n-grams
(shingles of `shingle_size` words). Candidates come from MinHash signatures and
datasketch's `MinHashLSH` (banding chosen by datasketch for the threshold, weighted
towards recall); every candidate is then verified with the true Jaccard of the shingle
sets, which is the similarity reported. The MinHash estimate never decides a hit.

The reference side (eval items, or a version's validation and test records) is what
the LSH indexes; the other side streams through `OverlapIndex.matches` in batches.
Signatures are computed for a whole batch at once with numpy, using datasketch's
``affine32`` permutations (MurmurHash3 finalizer, then ``a * h + b`` in uint32), so they
equal what `datasketch.MinHash.update_batch` gives for the same shingle hashes (a test
holds them to it); per-object MinHash would take hours over a million texts. Before a
text is looked up in the LSH, a numpy filter over the band digests drops the texts that
share no band with any reference text, which is almost all of them: a band collision is
necessary for an LSH hit, so the filter never loses one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["Match", "OverlapIndex", "OverlapSettings", "normalise", "normalise_many"]

# Letters, combining marks, digits and white space stay; everything else is a space.
_PUNCTUATION = r"[^\pL\pM\pN\s]"
_U64 = np.uint64
_MIX = _U64(0x9E3779B97F4A7C15)  # odd constant (golden ratio) combining word hashes
_BAND_MIX = _U64(0xC2B2AE3D27D4EB4F)
_CHUNK = 256  # texts per signature block: keeps the (num_perm x shingles) block in cache


@dataclass(frozen=True)
class OverlapSettings:
    """Thresholds of the overlap search; the defaults meet the contamination benchmark.

    `near_threshold` is the least Jaccard similarity of word `shingle_size`-grams that
    counts as a near duplicate. With 3-grams, a text whose words were edited at 15%
    keeps a Jaccard of about 0.45-0.6 with its original, unrelated texts about 0.
    """

    near_threshold: float = 0.4
    shingle_size: int = 3
    num_perm: int = 128
    min_words: int = 4
    seed: int = 1
    batch_size: int = 20_000
    # datasketch weighs false positives against false negatives when it picks the
    # banding; candidates are verified anyway, so missing one costs more.
    lsh_weights: tuple[float, float] = (0.1, 0.9)

    def __post_init__(self) -> None:
        if not 0.0 < self.near_threshold <= 1.0:
            raise ValueError(f"near_threshold must be in (0, 1], got {self.near_threshold}")
        if self.shingle_size < 1:
            raise ValueError(f"shingle_size must be at least 1, got {self.shingle_size}")
        if self.min_words < self.shingle_size:
            raise ValueError(
                f"min_words ({self.min_words}) must be at least shingle_size ({self.shingle_size})"
            )
        if self.num_perm < 2:
            raise ValueError(f"num_perm must be at least 2, got {self.num_perm}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")

    def to_json(self) -> dict[str, Any]:
        return {
            "near_threshold": self.near_threshold,
            "shingle_size": self.shingle_size,
            "num_perm": self.num_perm,
            "min_words": self.min_words,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Match:
    """Text `query` (its position in the stream) overlaps reference text `reference`."""

    query: int
    reference: int
    similarity: float
    exact: bool


def _word_lists(texts: Sequence[str]) -> Any:
    """Return the normalised words of each text as an Arrow list array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pa.array(texts, type=pa.large_string())
    array = pc.utf8_normalize(array, form="NFKC")
    array = pc.utf8_lower(array)
    array = pc.replace_substring_regex(array, pattern=_PUNCTUATION, replacement=" ")
    # Trimmed first: Arrow's split yields an empty word for trailing white space.
    return pc.utf8_split_whitespace(pc.utf8_trim_whitespace(array))


def normalise_many(texts: Sequence[str]) -> list[str]:
    """Return the normalised form of each text (see the module's docstring)."""
    return [" ".join(words) for words in _word_lists(texts).to_pylist()]


def normalise(text: str) -> str:
    """Return `text` normalised: NFKC, lower case, punctuation to spaces, spaces collapsed."""
    return normalise_many([text])[0]


def _fmix32(values: NDArray[np.uint32]) -> NDArray[np.uint32]:
    """MurmurHash3's 32-bit finalizer, as datasketch applies it before its permutations."""
    values = values ^ (values >> np.uint32(16))
    values = values * np.uint32(0x85EBCA6B)
    values = values ^ (values >> np.uint32(13))
    values = values * np.uint32(0xC2B2AE35)
    return values ^ (values >> np.uint32(16))


def _fmix64(values: NDArray[np.uint64]) -> NDArray[np.uint64]:
    values = values ^ (values >> _U64(33))
    values = values * _U64(0xFF51AFD7ED558CCD)
    values = values ^ (values >> _U64(33))
    values = values * _U64(0xC4CEB9FE1A85EC53)
    return values ^ (values >> _U64(33))


@dataclass
class _Batch:
    """Shingles and signatures of a batch of texts; only `usable` ones have shingles."""

    count: int
    usable: NDArray[np.intp]  # positions (in the batch) of texts with >= min_words words
    text_hashes: NDArray[np.uint64]  # hash of the normalised text, per usable text
    normalised: list[str]  # per usable text
    offsets: NDArray[np.int64]  # shingles of usable text i: shingles[offsets[i]:offsets[i+1]]
    shingles: NDArray[np.uint64]
    signatures: NDArray[np.uint32]  # (len(usable), num_perm)

    def shingle_set(self, i: int) -> NDArray[np.uint64]:
        return np.unique(self.shingles[self.offsets[i] : self.offsets[i + 1]])


def minhash_inputs(shingles: NDArray[np.uint64]) -> NDArray[np.uint32]:
    """Return the 32-bit values a MinHash takes for 64-bit shingle hashes."""
    return (shingles ^ (shingles >> _U64(32))).astype(np.uint32)


class _Signer:
    """Computes shingles and MinHash signatures of texts, many at a time."""

    def __init__(self, settings: OverlapSettings) -> None:
        from datasketch import MinHash  # type: ignore[import-untyped,unused-ignore]

        self.settings = settings
        permutations = MinHash(
            num_perm=settings.num_perm, seed=settings.seed, scheme="affine32"
        ).permutations
        self.a = np.asarray(permutations[0], dtype=np.uint32)[:, None]
        self.b = np.asarray(permutations[1], dtype=np.uint32)[:, None]

    def batch(self, texts: Sequence[str]) -> _Batch:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.compute as pc

        n = self.settings.shingle_size
        lists = _word_lists(texts)
        lengths = np.asarray(pc.list_value_length(lists).to_numpy(zero_copy_only=False))
        usable = np.flatnonzero(lengths >= self.settings.min_words)
        lists = lists.take(usable)
        lengths = lengths[usable].astype(np.int64)
        normalised = (
            pc.binary_join(lists, pa.scalar(" ", pa.large_string()))
            .to_numpy(zero_copy_only=False)
            .astype(object)
        )
        text_hashes = pd.util.hash_array(normalised, categorize=False)
        flat = pc.list_flatten(lists)
        encoded = pc.dictionary_encode(flat)
        # Each distinct word is hashed once (siphash with a fixed key: stable across runs).
        vocabulary = encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)
        words = pd.util.hash_array(vocabulary, categorize=False)[
            np.asarray(encoded.indices.to_numpy(zero_copy_only=False))
        ]
        total = len(words)
        combined = words[: total - n + 1].copy() if total >= n else np.zeros(0, _U64)
        for j in range(1, n):
            combined = combined * _MIX + words[j : total - n + 1 + j]
        per_text = lengths - (n - 1)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(per_text)]).astype(np.int64)
        positions = np.arange(offsets[-1], dtype=np.int64) + np.repeat(
            starts - offsets[:-1], per_text
        )
        shingles = _fmix64(combined[positions])
        return _Batch(
            count=len(texts),
            usable=usable,
            text_hashes=text_hashes,
            normalised=list(normalised),
            offsets=offsets,
            shingles=shingles,
            signatures=self.signatures(shingles, offsets),
        )

    def signatures(
        self, shingles: NDArray[np.uint64], offsets: NDArray[np.int64]
    ) -> NDArray[np.uint32]:
        """Return the MinHash signature of each text's shingles, one row per text."""
        hashed = _fmix32(minhash_inputs(shingles))
        count = len(offsets) - 1
        out = np.empty((count, self.settings.num_perm), dtype=np.uint32)
        for first in range(0, count, _CHUNK):
            last = min(count, first + _CHUNK)
            low, high = offsets[first], offsets[last]
            block = self.a * hashed[None, low:high]
            block += self.b
            out[first:last] = np.minimum.reduceat(block, offsets[first:last] - low, axis=1).T
        return out


class OverlapIndex:
    """Reference texts indexed for exact and near-duplicate lookups."""

    def __init__(
        self,
        texts: Sequence[str],
        settings: OverlapSettings | None = None,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        from datasketch import LeanMinHash, MinHashLSH  # type: ignore[import-untyped,unused-ignore]

        self.settings = settings or OverlapSettings()
        self._signer = _Signer(self.settings)
        self._lsh = MinHashLSH(
            threshold=self.settings.near_threshold,
            num_perm=self.settings.num_perm,
            weights=self.settings.lsh_weights,
        )
        self._sets: dict[int, NDArray[np.uint64]] = {}
        self._normalised: dict[int, str] = {}
        self._exact: dict[int, list[int]] = {}
        band_digests: list[list[NDArray[np.uint64]]] = [[] for _ in self._lsh.hashranges]
        for start in range(0, len(texts), self.settings.batch_size):
            batch = self._signer.batch(texts[start : start + self.settings.batch_size])
            for i, position in enumerate(batch.usable):
                key = start + int(position)
                self._sets[key] = batch.shingle_set(i)
                self._normalised[key] = batch.normalised[i]
                self._exact.setdefault(int(batch.text_hashes[i]), []).append(key)
                self._lsh.insert(
                    key,
                    LeanMinHash(
                        seed=self.settings.seed,
                        hashvalues=batch.signatures[i],
                        scheme="affine32",
                    ),
                    check_duplication=False,
                )
            for band, digest in enumerate(self._band_digests(batch.signatures)):
                band_digests[band].append(digest)
            if progress is not None:
                progress(batch.count)
        self._bands = [
            np.unique(np.concatenate(d)) if d else np.zeros(0, _U64) for d in band_digests
        ]
        self._exact_keys = np.array(sorted(self._exact), dtype=_U64)
        self.size = len(texts)

    @property
    def bands(self) -> tuple[int, int]:
        """The LSH banding datasketch chose: (bands, rows per band)."""
        return int(self._lsh.b), int(self._lsh.r)

    def _band_digests(self, signatures: NDArray[np.uint32]) -> list[NDArray[np.uint64]]:
        digests = []
        for start, end in self._lsh.hashranges:
            digest = np.zeros(len(signatures), dtype=_U64)
            for column in range(start, end):
                digest = digest * _BAND_MIX + signatures[:, column].astype(_U64)
            digests.append(_fmix64(digest))
        return digests

    def _may_collide(self, signatures: NDArray[np.uint32]) -> NDArray[np.bool_]:
        """Whether each signature shares at least one LSH band with a reference text."""
        found = np.zeros(len(signatures), dtype=bool)
        for digest, known in zip(self._band_digests(signatures), self._bands, strict=True):
            if len(known):
                at = np.minimum(np.searchsorted(known, digest), len(known) - 1)
                found |= known[at] == digest
        return found

    def matches(
        self,
        texts: Iterable[str],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[Match]:
        """Yield every reference text each of `texts` overlaps, exactly or nearly."""
        from datasketch import LeanMinHash  # type: ignore[import-untyped,unused-ignore]

        threshold = self.settings.near_threshold
        stream = iter(texts)
        start = 0
        while chunk := list(islice(stream, self.settings.batch_size)):
            batch = self._signer.batch(chunk)
            exact_rows = np.flatnonzero(np.isin(batch.text_hashes, self._exact_keys))
            exact: dict[int, set[int]] = {}
            for row in exact_rows:
                hits = {
                    key
                    for key in self._exact[int(batch.text_hashes[row])]
                    if self._normalised[key] == batch.normalised[row]
                }
                exact[int(row)] = hits
                for key in sorted(hits):
                    yield Match(start + int(batch.usable[row]), key, 1.0, True)
            for row in np.flatnonzero(self._may_collide(batch.signatures)):
                candidates = self._lsh.query(
                    LeanMinHash(
                        seed=self.settings.seed,
                        hashvalues=batch.signatures[row],
                        scheme="affine32",
                    )
                )
                if not candidates:
                    continue
                mine = batch.shingle_set(int(row))
                skip = exact.get(int(row), set())
                for key in sorted(candidates):
                    if key in skip:
                        continue
                    theirs = self._sets[key]
                    shared = len(np.intersect1d(mine, theirs, assume_unique=True))
                    similarity = shared / (len(mine) + len(theirs) - shared)
                    if similarity >= threshold:
                        yield Match(start + int(batch.usable[row]), key, similarity, False)
            start += len(chunk)
            if progress is not None:
                progress(len(chunk))
