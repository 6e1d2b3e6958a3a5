"""Weight files: what every model can need (:mod:`.catalog`), where they are on disk and whether they are the
official ones (:mod:`.files`), resumable HTTP downloads (:mod:`.http`) and fetching into the checkpoints folder
(:mod:`.fetch`). ``defectbench weights list|fetch`` is a thin wrapper over these.

The modules are imported one by one (nothing here imports them) so that the model code can use :mod:`.files`
without importing the catalog of every model.
"""
