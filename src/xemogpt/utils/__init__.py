"""Small shared helpers: the offline sentence encoder (:mod:`.sentence`), its embedding cache
(:mod:`.embedding_cache`), collectives outside a training loop (:mod:`.distributed`) and the default thread count
(:mod:`.threads`)."""
