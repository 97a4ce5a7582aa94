"""Training: running a recipe stage by stage (:mod:`.runner`, a class with named phases), the pieces a run is made of
(:mod:`.run`), resuming (:mod:`.resume`), callbacks that make a run stoppable and auditable (:mod:`.callbacks`),
strategies and precision (:mod:`.strategies`) and throughput measurement (:mod:`.throughput`)."""
