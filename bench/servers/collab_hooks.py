"""A no-op on_change hook, installed with `collab serve --hooks collab_hooks:hooks`
(bench's collab-hooks server): what an embedding host's hook costs on the hot path."""

from collab import DocumentChanged, Hooks


async def _changed(event: DocumentChanged) -> None:
    return None


hooks = Hooks(on_change=_changed)
