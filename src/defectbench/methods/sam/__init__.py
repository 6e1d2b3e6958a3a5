"""Segment Anything on defect images: official checkpoints, cached automatic masks, mask selection.

Modules: :mod:`.registry` (models and their official files), :mod:`.checkpoints` (finding, checking,
loading), :mod:`.mobilesam` (MobileSAM's TinyViT encoder), :mod:`.proposals` (proposal records, RLE,
cache), :mod:`.fast_decoder` and :mod:`.upsample` (our faster mask generation), :mod:`.generator`
(automatic mask generation, ours and the official), :mod:`.selection` and :mod:`.features` (oracle and
ground-truth-free strategies), :mod:`.predict` (library entry points), :mod:`.viz` (drawings).

The entry points are re-exported here lazily: ``predict_dataset``, ``SamMethod``, ``ProposalSource``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ProposalSource", "SamMethod", "predict_dataset"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from defectbench.methods.sam import predict

        return getattr(predict, name)
    raise AttributeError(name)
