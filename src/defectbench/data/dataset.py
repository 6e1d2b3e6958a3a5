"""A dataset: its samples, its classes and its named splits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from defectbench.data.sample import Sample
from defectbench.errors import DataError


@dataclass
class Dataset:
    """A loaded dataset: every sample found on disk plus the named splits (lists of sample ids)."""

    name: str
    title: str
    root: Path
    samples: list[Sample]
    classes: tuple[str, ...] = ()
    splits: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_id = {s.id: s for s in self.samples}
        if len(self._by_id) != len(self.samples):
            seen: set[str] = set()
            dup = sorted({s.id for s in self.samples if s.id in seen or seen.add(s.id)})
            raise DataError(f"{self.root}: duplicate image stems {dup[:5]}; stems must be unique")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, sample_id: str) -> Sample:
        return self._by_id[sample_id]

    def split(self, name: str) -> list[Sample]:
        """Return the samples of a split (``all`` = every sample), in the split file's order."""
        if name == "all":
            return list(self.samples)
        if name not in self.splits:
            raise DataError(f"{self.title}: unknown split {name!r}; choose one of {', '.join(self.split_names())}")
        missing = [i for i in self.splits[name] if i not in self._by_id]
        if missing:
            raise DataError(
                f"{self.root}: split {name!r} lists {len(missing)} images that are not on disk "
                f"(first: {missing[0]}); the dataset copy is incomplete — fetch it again"
            )
        return [self._by_id[i] for i in self.splits[name]]

    def split_names(self) -> list[str]:
        """Return the names of the dataset's splits, ``all`` included."""
        return [*self.splits, "all"]
