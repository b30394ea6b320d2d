"""What a runner hands a stage's driver and steps: the stage's name, its call tag, the config, and a
typed reader or writer for every dataset its declaration reads or writes, resolved under the run
dir here, so no core or training module names a run-dir dataset or a stage
(`tests/test_structure.py` scans for it). `toolweave.stages.registry.context` builds it for a chain
(the upstream dataset included). Below the stages package, so the core it hands it to may import it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolweave import io
from toolweave.config import RunConfig

from toolweave.llm.types import CallTag
from toolweave.schemas import Record, RecordError, Reject


@dataclass(frozen=True)
class Dataset:
    """A dataset under the run dir and the record kind of its rows (None: files, e.g. a model dir)."""

    name: str
    kind: type[Record] | None = None


@dataclass(frozen=True)
class DatasetReader:
    """A declared input: its rows as its record kind (unreadable rows as RecordErrors, nothing lost)."""

    dataset: Dataset
    path: Path

    def read(self) -> tuple[list[Record], list[RecordError]]:
        if self.dataset.kind is None:
            raise TypeError(f"dataset {self.dataset.name} holds files, not records: use its path")
        return io.read_records(self.path, self.dataset.kind)

    def exists(self) -> bool:
        return bool(io.part_files(self.path)) if self.dataset.kind is not None else io.exists(self.path)

    def writer(self) -> DatasetWriter:
        """For a step that adds to its input (verify imports answer files into the episodes it checks)."""
        return DatasetWriter(self.dataset, self.path)

    def file(self, *parts: str) -> Path:
        return self.path.joinpath(*parts)


@dataclass(frozen=True)
class DatasetWriter:
    """A declared output: parts of its record kind (a files dataset: paths under it)."""

    dataset: Dataset
    path: Path

    def write(self, records: list[Record]) -> None:
        io.write_part(records, self.path, self._kind())

    def replace(self, records: list[Record], name: str) -> None:
        """One fixed part `name`, rewritten by a rerun."""
        io.replace_part(records, self.path, self._kind(), name=name)

    def written_ids(self) -> set[str]:
        return io.existing_ids(self.path)

    def reader(self) -> DatasetReader:
        """For a step after the records that reads what they wrote (verify's dataset card)."""
        return DatasetReader(self.dataset, self.path)

    def file(self, *parts: str) -> Path:
        return self.path.joinpath(*parts)

    def _kind(self) -> type[Record]:
        if self.dataset.kind is None:
            raise TypeError(f"dataset {self.dataset.name} holds files, not records: use its path")
        return self.dataset.kind


@dataclass(frozen=True)
class StageContext:
    name: str
    cfg: RunConfig
    inputs: dict[str, DatasetReader] = field(default_factory=dict)
    outputs: dict[str, DatasetWriter] = field(default_factory=dict)
    # where its Rejects go: a declared Reject output, else a per-record stage's `<output>_rejects`
    rejects: DatasetWriter | None = None
    # the dataset its records come from in this chain (registry.upstream), when a stage before it writes one
    upstream: str | None = None

    def call_tag(self, role: str, episode: str = "") -> CallTag:
        return CallTag(stage=self.name, episode=episode, role=role)

    def of_kind(self, kind: type[Record]) -> DatasetReader:
        """Its declared input of record kind `kind` (exactly that kind; the first one declared)."""
        for reader in self.inputs.values():
            if reader.dataset.kind is kind:
                return reader
        raise KeyError(f"stage {self.name} declares no input of kind {kind.__name__}")

    def source(self) -> DatasetReader | None:
        return self.inputs[self.upstream] if self.upstream is not None else None


def stage_context(cfg: RunConfig, stage: Any, upstream: Dataset | None = None) -> StageContext:
    """The context of `stage` under `cfg.run_dir`: one reader per declared read (and `upstream`, when
    the chain gives one it does not declare), one writer per declared write. `stage`: its
    `toolweave.stages.declaration.Stage` (the core below the stages package reads only its fields)."""
    reads = {d.name: d for d in stage.reads}
    if upstream is not None:
        reads.setdefault(upstream.name, upstream)
    outputs = {d.name: DatasetWriter(d, cfg.path(d.name)) for d in stage.writes}
    rejects = next((w for w in outputs.values() if w.dataset.kind is Reject), None)
    if rejects is None and stage.per_record:  # generated instructions' rejects sit beside the final set
        name = f"{stage.writes[0].name.removesuffix('_raw')}_rejects"
        rejects = DatasetWriter(Dataset(name, Reject), cfg.path(name))
    return StageContext(stage.name, cfg, inputs={n: DatasetReader(d, cfg.path(n)) for n, d in reads.items()},
                        outputs=outputs, rejects=rejects, upstream=upstream.name if upstream is not None else None)
