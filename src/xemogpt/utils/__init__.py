"""Small shared helpers: the offline sentence encoder (:mod:`.sentence`), its embedding cache
(:mod:`.embedding_cache`) and collectives outside a training loop (:mod:`.distributed`)."""
